rule detect:
    input:
        unpack(get_detect_input),
    output:
        "results/detect/{shard}.parquet",
    log:
        "logs/detect/{shard}.log",
    benchmark:
        "logs/benchmarks/detect/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=DETECT_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=DETECT_SETTINGS,
        models=config["models"],
        cache=stage("detect").cache(),
    script:
        "../scripts/detect.py"
