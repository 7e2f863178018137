localrules:
    clips,
    clips_webdataset,


rule cut:
    input:
        unpack(get_cut_input),
    output:
        table="results/cut/{shard}.parquet",
        files=directory("results/cut/{shard}"),
    log:
        "logs/cut/{shard}.log",
    benchmark:
        "logs/benchmarks/cut/{shard}.tsv"
    conda:
        "../envs/extract.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        settings=CUT_SETTINGS,
        limits=STAGE_LIMITS["clips"],
        cache="results/.cache/cut/{shard}",
    script:
        "../scripts/cut.py"


rule clips:
    input:
        unpack(get_clips_input),
    output:
        metadata=multiext("results/clips/metadata", ".jsonl", ".parquet"),
        files=directory("results/clips/files"),
        manifest="results/clips/manifest.json",
    log:
        "logs/clips.log",
    benchmark:
        "logs/benchmarks/clips.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        stages=CLIP_STAGES,
        scores=CLIP_SCORES,
        splits=SPLIT_PLACEMENT,
        takedown=TAKEDOWN,
        run=RUN_CONTEXT,
    script:
        "../scripts/clips.py"


rule clips_webdataset:
    input:
        metadata="results/clips/metadata.jsonl",
        files="results/clips/files",
        summary="results/pipeline_result.json",
    output:
        directory("results/export/clips"),
    log:
        "logs/clips_webdataset.log",
    benchmark:
        "logs/benchmarks/clips_webdataset.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        max_clips=config["clips"]["webdataset_max_clips"],
        run=RUN_CONTEXT,
    script:
        "../scripts/clips_webdataset.py"
