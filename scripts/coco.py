"""The split frames' detections as COCO: all splits in one file, and one file per split,
each image with its provenance; and their manifest."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import build_coco, coco_split, with_provenance, with_text, write_coco
from video_miner.texts import read_captions, read_segments
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest
from video_miner.provenance import video_provenance
from video_miner.splits import split_frames
from video_miner.tables.video import VIDEO

log_to_file(snakemake.log[0])
run = snakemake.params.run
provenance = video_provenance(VIDEO.read(list(snakemake.input.videos)), run["run_id"])
frames = with_text(split_frames(snakemake.input.frames),
                   read_captions(snakemake.input.captions) if snakemake.input.captions else None,
                   read_segments(snakemake.input.segments) if snakemake.input.segments else None)
frames = with_provenance(frames, provenance)
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
coco = build_coco(frames, snakemake.params.classes, {"detector": snakemake.params.backend, "run_id": run["run_id"]},
                  regions)
write_coco(snakemake.output.combined, coco)
per_split = {}
for split, path in zip(snakemake.params.splits, snakemake.output.splits, strict=True):
    part = coco_split(coco, split)
    write_coco(path, part)
    per_split[split] = len(part["images"])
    logging.info("%s: %d images, %d annotations", split, len(part["images"]), len(part["annotations"]))
write_manifest(snakemake.output.manifest, run, per_split,
               {v: provenance[v] for v in sorted(set(frames["video_id"])) if v in provenance}, snakemake.input.summary,
               files=[snakemake.output.combined, *snakemake.output.splits])
logging.info("%d images, %d annotations", len(coco["images"]), len(coco["annotations"]))
