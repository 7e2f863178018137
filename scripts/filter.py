"""Score a shard's frames against the text prompts (SigLIP2/SigLIP) and mark which are kept."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.filtering import filter_shard, write_filter_table
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, SiglipScorer, model_key
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
cache = VideoCache(snakemake.params.cache,
                   {**model_key(settings["model"], model_settings), "classes": settings["classes"]})
table, record = filter_shard(
    FRAME.read_kept(snakemake.input.frames, videos=kept_videos(snakemake.input.videos)),
    lambda classes: SiglipScorer(settings["model"], model_settings, classes),
    settings,
    cache,
)
record["seconds"] = round(time.perf_counter() - started, 3)
write_filter_table(snakemake.output[0], table, record)
logging.info("%d of %d frames kept in %.1fs (%.1f frames/s)", record["kept"], record["frames"],
             record["seconds"], record["frames"] / max(record["seconds"], 1e-9))
