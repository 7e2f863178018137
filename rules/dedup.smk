rule embed:
    input:
        unpack(embed_input),
    output:
        directory("results/dedup/{shard}"),
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
        model=DEDUP_MODEL,
    script:
        "../scripts/embed.py"


rule dedup_cross_video:
    input:
        all_shard_dedup,
    output:
        index="results/dedup/cross_video.faiss",
        table="results/dedup/unique_frames.parquet",
    log:
        "logs/dedup_cross_video.log",
    benchmark:
        "logs/benchmarks/dedup_cross_video.tsv"
    conda:
        "../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=32000,
        runtime=480,
    params:
        settings=DEDUP,
    script:
        "../scripts/dedup_cross_video.py"
