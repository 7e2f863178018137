"""The split frames' points (Moondream's, when asked for) as COCO keypoints: all splits
in one file, and one file per split."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import build_points_coco, coco_split, write_coco
from video_miner.logs import log_to_file
from video_miner.splits import split_frames

log_to_file(snakemake.log[0])
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
coco = build_points_coco(split_frames(snakemake.input.frames), snakemake.params.classes,
                         {"detector": snakemake.params.backend}, regions)
write_coco(snakemake.output.combined, coco)
for split, path in zip(snakemake.params.splits, snakemake.output.splits, strict=True):
    write_coco(path, coco_split(coco, split))
logging.info("%d images, %d points", len(coco["images"]), len(coco["annotations"]))
