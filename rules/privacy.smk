rule privacy:
    input:
        unpack(get_privacy_input),
    output:
        "results/privacy/{shard}.parquet",
    log:
        "logs/privacy/{shard}.log",
    benchmark:
        "logs/benchmarks/privacy/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        settings=config["privacy"],
        detected=PRIVACY_DETECTED,
    script:
        "../scripts/privacy.py"
