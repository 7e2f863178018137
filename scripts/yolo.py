"""Export the split frames and their boxes as a YOLO dataset, with its manifest (YOLO has
no per-image metadata: the manifest's ``videos`` holds each video's provenance)."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.blur import read_regions
from video_miner.manifest import write_manifest
from video_miner.provenance import video_provenance
from video_miner.splits import split_frames
from video_miner.tables.video import VIDEO
from video_miner.yolo import write_yolo

log_to_file(snakemake.log[0])
run = snakemake.params.run
frames = split_frames(snakemake.input.frames)
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
result = write_yolo(snakemake.output[0], frames, snakemake.params.classes, snakemake.params.splits, regions)
provenance = video_provenance(VIDEO.read(list(snakemake.input.videos)), run["run_id"])
write_manifest(snakemake.output[0], run, result["splits"],
               {v: provenance[v] for v in sorted(set(frames["video_id"])) if v in provenance}, snakemake.input.summary)
logging.info("YOLO: %s", result["splits"])
if result["dropped_boxes"]:
    logging.warning("%d boxes lay outside their image and were dropped", result["dropped_boxes"])
