"""Draw the detections on the highest-scoring frames."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import final_frames, write_visualizations
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
count = write_visualizations(snakemake.output[0], final_frames(list(snakemake.input.frames)), snakemake.params.classes,
                             snakemake.params.max_images, regions)
logging.info("drew %d frames", count)
