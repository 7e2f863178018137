"""The split frames' detections as COCO: all splits in one file, and one file per split."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import build_coco, coco_split, write_coco
from video_miner.logs import log_to_file
from video_miner.splits import split_frames

log_to_file(snakemake.log[0])
coco = build_coco(split_frames(snakemake.input[0]), snakemake.params.classes, {"detector": snakemake.params.backend})
write_coco(snakemake.output.combined, coco)
for split, path in zip(snakemake.params.splits, snakemake.output.splits, strict=True):
    part = coco_split(coco, split)
    write_coco(path, part)
    logging.info("%s: %d images, %d annotations", split, len(part["images"]), len(part["annotations"]))
logging.info("%d images, %d annotations", len(coco["images"]), len(coco["annotations"]))
