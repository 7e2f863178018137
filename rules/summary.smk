localrules:
    run_config,
    summary,


rule run_config:
    output:
        "results/run_config.yaml",
    log:
        "logs/run_config.log",
    priority: 50
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=config,
    script:
        "../scripts/run_config.py"


rule summary:
    input:
        unpack(get_summary_input),
    output:
        summary="results/pipeline_result.json",
        status="results/status.tsv",
        videos=multiext("results/metadata/videos", ".parquet", ".jsonl", ".csv"),
    log:
        "logs/summary.log",
    benchmark:
        "logs/benchmarks/summary.tsv"
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        inputs=get_summary_inputs_config,
        stages=ENABLED,
        rejected=get_summary_rejected,
        duplicates=get_summary_duplicates,
    script:
        "../scripts/summary.py"
