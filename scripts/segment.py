"""Masks for a shard's boxes: SAM prompted with each box; COCO RLE and areas."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, model_key
from video_miner.segment import SamSegmenter, segment_frames
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
cache = VideoCache(snakemake.params.cache, model_key(settings["model"], model_settings))
frames = FRAME.read_kept(snakemake.input.frames, videos=kept_videos(snakemake.input.videos))
table, record = segment_frames(frames, lambda: SamSegmenter(settings["model"], model_settings, settings["batch_size"]),
                               settings["classes"], cache, workers=snakemake.threads)
record.update(model=settings["model"], seconds=round(time.perf_counter() - started, 3))
FRAME.write(snakemake.output[0], table, record)
logging.info("%d frames, %d masks (%d empty) in %.1fs (%.1f frames/s)", record["frames"], record["masks"],
             record["empty_masks"], record["seconds"], record["frames"] / max(record["seconds"], 1e-9))
