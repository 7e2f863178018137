rule extract:
    input:
        unpack(get_extract_input),
    output:
        table="results/extract/{shard}.parquet",
        frames=directory("results/extract/{shard}"),
    log:
        "logs/extract/{shard}.log",
    benchmark:
        "logs/benchmarks/extract/{shard}.tsv"
    conda:
        "../envs/extract.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        options=config["extract"],
        limits=STAGE_LIMITS["extract"],
        cache=stage("extract").cache(),
        image_extensions=config["image_extensions"],
    script:
        "../scripts/extract.py"
