localrules:
    coco,
    points,
    visualize,
    dataset,
    yolo,
    webdataset,
    label_studio,
    report_plots,


rule coco:
    input:
        unpack(get_coco_input),
    output:
        combined="results/detections/annotations.json",
        splits=expand("results/detections/annotations_{split}.json", split=SPLIT_NAMES),
        manifest="results/detections/annotations.manifest.json",
    log:
        "logs/coco.log",
    benchmark:
        "logs/benchmarks/coco.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        classes=DETECTION["classes"],
        backend=DETECTION["backend"],
        splits=SPLIT_NAMES,
        run=RUN_CONTEXT,
    script:
        "../scripts/coco.py"


rule points:
    input:
        unpack(get_points_input),
    output:
        combined="results/detections/points.json",
        splits=expand("results/detections/points_{split}.json", split=SPLIT_NAMES),
    log:
        "logs/points.log",
    benchmark:
        "logs/benchmarks/points.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        classes=DETECTION["classes"],
        backend=DETECTION["backend"],
        splits=SPLIT_NAMES,
    script:
        "../scripts/points.py"


rule visualize:
    input:
        unpack(get_visualize_input),
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


rule dataset:
    input:
        unpack(get_dataset_input),
    output:
        directory("results/dataset"),
    log:
        "logs/dataset.log",
    benchmark:
        "logs/benchmarks/dataset.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        run=RUN_CONTEXT,
    script:
        "../scripts/dataset.py"


rule yolo:
    input:
        unpack(get_yolo_input),
    output:
        directory("results/export/yolo"),
    log:
        "logs/yolo.log",
    benchmark:
        "logs/benchmarks/yolo.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        classes=DETECTION["classes"],
        splits=SPLIT_NAMES,
        run=RUN_CONTEXT,
    script:
        "../scripts/yolo.py"


rule webdataset:
    input:
        unpack(get_webdataset_input),
    output:
        directory("results/export/webdataset"),
    log:
        "logs/webdataset.log",
    benchmark:
        "logs/benchmarks/webdataset.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        max_frames=EXPORT["webdataset_max_frames"],
        run=RUN_CONTEXT,
    script:
        "../scripts/webdataset.py"


rule label_studio:
    input:
        get_label_studio_input,
    output:
        tasks="results/export/label_studio/tasks.json",
        config="results/export/label_studio/config.xml",
    log:
        "logs/label_studio.log",
    benchmark:
        "logs/benchmarks/label_studio.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        classes=DETECTION["classes"],
        backend=DETECTION["backend"],
        url_prefix=EXPORT["label_studio_url_prefix"],
    script:
        "../scripts/label_studio.py"


rule upload:
    input:
        unpack(get_upload_input),
    output:
        "results/upload/{target}.done",
    log:
        "logs/upload/{target}.log",
    benchmark:
        "logs/benchmarks/upload/{target}.tsv"
    conda:
        "../envs/upload.yaml"
    resources:
        uploads=1,
        mem_mb=2000,
        runtime=240,
    params:
        target=get_upload_target,
    script:
        "../scripts/upload.py"


rule report_plots:
    input:
        unpack(get_report_plots_input),
    output:
        funnel=report(
            "results/report/funnel.png",
            caption="../report/funnel.rst",
            category="Summary",
        ),
        scores=report(
            "results/report/filter_scores.png",
            caption="../report/filter_scores.rst",
            category="Summary",
        ),
        detections=report(
            "results/report/detections_per_class.png",
            caption="../report/detections.rst",
            category="Summary",
        ),
    log:
        "logs/report_plots.log",
    benchmark:
        "logs/benchmarks/report_plots.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        classes=DETECTION["classes"],
    script:
        "../scripts/report_plots.py"
