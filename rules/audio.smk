rule audio:
    input:
        unpack(get_audio_input),
    output:
        table="results/audio/{shard}.parquet",
        segments="results/audio/segments/{shard}.parquet",
    log:
        "logs/audio/{shard}.log",
    benchmark:
        "logs/benchmarks/audio/{shard}.tsv"
    conda:
        "../envs/audio.yaml"
    threads: 2
    resources:
        gpu=MODEL_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        settings=AUDIO_SETTINGS,
        models=config["models"],
        limits=STAGE_LIMITS["extract"],
        cache=stage("audio").cache(),
    script:
        "../scripts/audio.py"
