"""The split frames' detections as COCO: all splits in one file, and one file per split."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import build_coco, coco_split, with_text, write_coco
from video_miner.texts import read_captions, read_segments
from video_miner.logs import log_to_file
from video_miner.splits import split_frames

log_to_file(snakemake.log[0])
frames = with_text(split_frames(snakemake.input.frames),
                   read_captions(snakemake.input.captions) if snakemake.input.captions else None,
                   read_segments(snakemake.input.segments) if snakemake.input.segments else None)
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
coco = build_coco(frames, snakemake.params.classes, {"detector": snakemake.params.backend}, regions)
write_coco(snakemake.output.combined, coco)
for split, path in zip(snakemake.params.splits, snakemake.output.splits, strict=True):
    part = coco_split(coco, split)
    write_coco(path, part)
    logging.info("%s: %d images, %d annotations", split, len(part["images"]), len(part["annotations"]))
logging.info("%d images, %d annotations", len(coco["images"]), len(coco["annotations"]))
