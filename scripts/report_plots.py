"""Plots for the Snakemake report: frames per stage, filter scores, detections per class."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.report import plot_report
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
summary = json.loads(Path(snakemake.input.summary).read_text())
coco = json.loads(Path(snakemake.input.annotations).read_text()) if "annotations" in snakemake.input.keys() else None
plot_report(dict(snakemake.output.items()), summary, coco, list(snakemake.input.get("filtered", [])),
            snakemake.params.classes)
