"""Merge the shards' detections into one COCO file."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import build_coco, final_frames, write_coco
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
coco = build_coco(final_frames(list(snakemake.input)), snakemake.params.classes,
                  {"detector": snakemake.params.backend})
write_coco(snakemake.output[0], coco)
logging.info("%d images, %d annotations", len(coco["images"]), len(coco["annotations"]))
