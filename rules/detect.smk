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
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=DETECTION,
        models=config["models"],
        videos=get_detect_videos,
        cache=stage("detect").cache(),
    script:
        "../scripts/detect.py"
