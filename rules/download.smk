rule download:
    input:
        get_download_input,
    output:
        table="results/download/{shard}.parquet",
        files=video_files_output("results/download/{shard}"),
    log:
        "logs/download/{shard}.log",
    benchmark:
        "logs/benchmarks/download/{shard}.tsv"
    conda:
        "../envs/download.yaml"
    threads: config["download"]["workers"]
    resources:
        downloads=get_download_slots,
        mem_mb=2000,
        runtime=120,
    params:
        sources=get_download_sources,
        options=config["download"],
        local_mode=config["local_mode"],
        keep_videos=KEEP_VIDEOS,
        cache=stage("download").cache(),
    script:
        "../scripts/download.py"
