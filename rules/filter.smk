rule filter:
    input:
        unpack(get_filter_input),
    output:
        "results/filter/{shard}.parquet",
    log:
        "logs/filter/{shard}.log",
    benchmark:
        "logs/benchmarks/filter/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=FILTER,
        models=config["models"],
        cache=stage("filter").cache(),
    script:
        "../scripts/filter.py"
