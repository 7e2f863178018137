rule probe:
    input:
        unpack(get_probe_input),
    output:
        "results/probe/{shard}.parquet",
    log:
        "logs/probe/{shard}.log",
    benchmark:
        "logs/benchmarks/probe/{shard}.tsv"
    conda:
        "../envs/extract.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        filters=config["probe"]["filters"],
        hash_frames=HASH_FRAMES,
        limits=STAGE_LIMITS["probe"],
        cache=stage("probe").cache(),
    script:
        "../scripts/probe.py"
