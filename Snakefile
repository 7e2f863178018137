from snakemake.utils import min_version, validate

from video_miner.config import check_config

min_version("9.17")


configfile: "config/config.yaml"


# Every problem named by its key first; then validate() fills the defaults.
check_config(config, workflow.source_path("config/schema.yaml"))
validate(config, "config/schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/search.smk"
include: "rules/download.smk"
include: "rules/probe.smk"
include: "rules/video_dedup.smk"
include: "rules/shots.smk"
include: "rules/clip_scores.smk"
include: "rules/clips.smk"
include: "rules/extract.smk"
include: "rules/filter.smk"
include: "rules/embed.smk"
include: "rules/dedup.smk"
include: "rules/detect.smk"
include: "rules/verify.smk"
include: "rules/segment.smk"
include: "rules/audio.smk"
include: "rules/captions.smk"
include: "rules/privacy.smk"
include: "rules/splits.smk"
include: "rules/export.smk"
include: "rules/summary.smk"


rule all:
    default_target: True
    input:
        get_all_input,


onerror:
    write_failed_run_summary()
