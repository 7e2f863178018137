rule embed:
    input:
        unpack(get_embed_input),
    output:
        table="results/embed/{shard}.parquet",
        embeddings=directory("results/embed/{shard}"),
    log:
        "logs/embed/{shard}.log",
    benchmark:
        "logs/benchmarks/embed/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=EMBED_SETTINGS,
        model=EMBED_MODEL,
        models=EMBED_MODELS,
        cache=stage("embed").cache(),
    script:
        "../scripts/embed.py"
