localrules:
    splits,


rule splits:
    input:
        unpack(get_splits_input),
    output:
        videos="results/splits/videos.parquet",
        frames="results/splits/frames.parquet",
    log:
        "logs/splits.log",
    benchmark:
        "logs/benchmarks/splits.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=SPLITS,
        takedown=TAKEDOWN,
    script:
        "../scripts/splits.py"
