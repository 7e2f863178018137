rule dedup:
    input:
        unpack(get_dedup_input),
    output:
        table="results/dedup/unique_frames.parquet",
        index="results/dedup/cross_video.faiss",
    log:
        "logs/dedup/cross_video.log",
    benchmark:
        "logs/benchmarks/dedup/cross_video.tsv"
    conda:
        "../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=32000,
        runtime=480,
    params:
        settings=DEDUP,
        shards=get_dedup_shards,
    script:
        "../scripts/dedup.py"
