rule video_dedup:
    input:
        get_video_dedup_input,
    output:
        table="results/video_dedup/videos.parquet",
        duplicates="results/metadata/duplicates.json",
    log:
        "logs/video_dedup/videos.log",
    benchmark:
        "logs/benchmarks/video_dedup/videos.tsv"
    conda:
        "../envs/models.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=VIDEO_DEDUP,
    script:
        "../scripts/video_dedup.py"
