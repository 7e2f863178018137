rule summary:
    input:
        unpack(summary_inputs),
    output:
        summary="results/pipeline_result.json",
        status="results/status.tsv",
    log:
        "logs/summary.log",
    conda:
        "../envs/summary.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        rejected=rejected_inputs,
        duplicates=duplicate_inputs,
    script:
        "../scripts/summary.py"
