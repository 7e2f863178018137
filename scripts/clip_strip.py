"""A kept and a dropped clip side by side, with their scores (results/report/clip_strip.jpg)."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

import pandas as pd

from video_miner.clipstrip import write_clip_strip
from video_miner.logs import log_to_file
from video_miner.tables.video import VIDEO

log_to_file(snakemake.log[0])
clips = pd.read_parquet(snakemake.input.clips)
clips["scores"] = clips["scores"].map(lambda pairs: dict(pairs) if pairs is not None else {})
downloads = VIDEO.read_kept(list(snakemake.input.downloads), columns=["file"])
shown = write_clip_strip(snakemake.output[0], clips, dict(zip(downloads["video_id"], downloads["file"])),
                         snakemake.params.frames)
logging.info("clip strip: %d clips", shown)
