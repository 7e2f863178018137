"""Export the split frames and their boxes as a YOLO dataset."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.blur import read_regions
from video_miner.splits import split_frames
from video_miner.yolo import write_yolo

log_to_file(snakemake.log[0])
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
result = write_yolo(snakemake.output[0], split_frames(snakemake.input.frames), snakemake.params.classes,
                    snakemake.params.splits, regions)
logging.info("YOLO: %s", result["splits"])
if result["dropped_boxes"]:
    logging.warning("%d boxes lay outside their image and were dropped", result["dropped_boxes"])
