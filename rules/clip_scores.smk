localrules:
    clip_strip,


# One job per shard scores its clips for every enabled score stage (flash, ocr, motion,
# aesthetic) from one decode pass per video, and writes each stage's table.
rule clip_scores:
    input:
        unpack(get_clip_scores_input),
    output:
        **SCORE_OUTPUTS,
    log:
        "logs/clip_scores/{shard}.log",
    benchmark:
        "logs/benchmarks/clip_scores/{shard}.tsv"
    conda:
        "../envs/clip_scores.yaml"
    threads: 2
    resources:
        gpu=SCORE_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        settings=SCORE_SETTINGS,
        models=SCORE_MODELS,
        limits=STAGE_LIMITS["clips"],
        cache="results/.cache/clip_scores/{shard}",
    script:
        "../scripts/clip_scores.py"


# A seeded sample of clips across shards scored by every enabled score stage, nothing
# dropped: quantiles, suggested thresholds and histograms (run it alone: target calibration).
rule calibration:
    input:
        unpack(get_calibration_input),
    output:
        quantiles="results/calibration/quantiles.json",
        scores="results/calibration/scores.parquet",
        histograms=report(
            "results/calibration/histograms.png",
            caption="../report/calibration.rst",
            category="Calibration",
        ),
    log:
        "logs/calibration.log",
    benchmark:
        "logs/benchmarks/calibration.tsv"
    conda:
        "../envs/clip_scores.yaml"
    threads: 2
    resources:
        gpu=SCORE_GPUS,
        mem_mb=8000,
        runtime=240,
    params:
        settings=SCORE_SETTINGS,
        models=SCORE_MODELS,
        calibration=CALIBRATION,
        limits=STAGE_LIMITS["clips"],
        cache="results/.cache/calibration",
    script:
        "../scripts/calibration.py"


# A kept and a dropped clip side by side with their scores, for the report (and README).
rule clip_strip:
    input:
        unpack(get_clip_strip_input),
    output:
        report(
            "results/report/clip_strip.jpg",
            caption="../report/clip_strip.rst",
            category="Clips",
        ),
    log:
        "logs/clip_strip.log",
    benchmark:
        "logs/benchmarks/clip_strip.tsv"
    conda:
        "../envs/extract.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        frames=4,
    script:
        "../scripts/clip_strip.py"
