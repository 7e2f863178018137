rule detect:
    input:
        unpack(detect_input),
    output:
        "results/detections/shards/{shard}.parquet",
    log:
        "logs/detect/{shard}.log",
    benchmark:
        "logs/benchmarks/detect/{shard}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 4
    resources:
        gpu=MODEL_GPUS,
        mem_mb=16000,
        runtime=240,
    params:
        settings=DETECTION,
        videos=shard_videos,
    script:
        "../scripts/detect.py"


rule coco:
    input:
        all_shard_detections,
    output:
        "results/detections/annotations.json",
    log:
        "logs/coco.log",
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        classes=DETECTION["classes"],
        backend=DETECTION["backend"],
    script:
        "../scripts/coco.py"


rule visualize:
    input:
        all_shard_detections,
    output:
        report(
            directory("results/detections/visualizations"),
            patterns=["{name}.jpg"],
            caption="../report/visualizations.rst",
            category="Detections",
        ),
    log:
        "logs/visualize.log",
    benchmark:
        "logs/benchmarks/visualize.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        classes=DETECTION["classes"],
        max_images=DETECTION["visualize"]["max_images"],
    script:
        "../scripts/visualize.py"
