rule captions:
    input:
        unpack(get_captions_input),
    output:
        "results/captions/{shard}.parquet",
    log:
        "logs/captions/{shard}.log",
    benchmark:
        "logs/benchmarks/captions/{shard}.tsv"
    conda:
        "../envs/captions.yaml"
    threads: 2
    resources:
        gpu=CAPTION_GPUS,
        api_requests=CAPTION_API_REQUESTS,
        mem_mb=8000,
        runtime=240,
    params:
        settings=CAPTION_SETTINGS,
        targets=CAPTION_TARGETS,
        models=CAPTION_MODELS,
        limits=CAPTION_LIMITS,
        cache=stage("captions").cache(),
    script:
        "../scripts/captions.py"
