"""Draw the detections on the highest-scoring frames."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import final_frames, write_visualizations
from video_miner.logs import log_to_file
from video_miner.splits import read_takedown

log_to_file(snakemake.log[0])
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
frames = final_frames(list(snakemake.input.frames))
# The boxes' tables hold every video; the split table records the ones taken down.
removed = (read_takedown(snakemake.input.splits) or {}).get("videos") or {}
frames = frames[~frames["video_id"].isin(list(removed))]
count = write_visualizations(snakemake.output[0], frames, snakemake.params.classes, snakemake.params.max_images,
                             regions)
logging.info("drew %d frames%s", count, f" ({len(removed)} videos taken down left out)" if removed else "")
