rule shots:
    input:
        unpack(get_shots_input),
    output:
        "results/shots/{shard}.parquet",
    log:
        "logs/shots/{shard}.log",
    benchmark:
        "logs/benchmarks/shots/{shard}.tsv"
    conda:
        "../envs/shots.yaml"
    threads: 2
    resources:
        gpu=SHOTS_GPUS,
        mem_mb=4000,
        runtime=240,
    params:
        settings=config["shots"],
        device=config["models"]["device"],
        limits=STAGE_LIMITS["clips"],
        cache=stage("shots").cache(),
    script:
        "../scripts/shots.py"
