rule verify:
    input:
        unpack(get_verify_input),
    output:
        "results/verify/{shard}.parquet",
    log:
        "logs/verify/{shard}.log",
    benchmark:
        "logs/benchmarks/verify/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=VERIFY_SETTINGS,
        models=config["models"],
        cache=stage("verify").cache(),
    script:
        "../scripts/verify.py"
