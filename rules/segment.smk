rule segment:
    input:
        unpack(get_segment_input),
    output:
        "results/segment/{shard}.parquet",
    log:
        "logs/segment/{shard}.log",
    benchmark:
        "logs/benchmarks/segment/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=SEGMENT_SETTINGS,
        models=config["models"],
        cache=stage("segment").cache(),
    script:
        "../scripts/segment.py"
