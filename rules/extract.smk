rule extract:
    input:
        "results/videos/{video}.info.json",
    output:
        frames=directory("results/frames/{video}"),
        manifest="results/frames/{video}.parquet",
    log:
        "logs/extract/{video}.log",
    benchmark:
        "logs/benchmarks/extract/{video}.tsv"
    conda:
        "../envs/extract.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        options=config["extract"],
    script:
        "../scripts/extract.py"
