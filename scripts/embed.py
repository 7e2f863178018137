"""Embed a shard's frames, dedup each video in time, write per-video FAISS indexes."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.dedup import embed_shard, threshold_for, write_embed_table
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, make_embedder, model_key
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
cache = VideoCache(snakemake.params.cache,
                   {**model_key(snakemake.params.model, model_settings), "backend": settings["backend"]})
table, record = embed_shard(
    FRAME.read_kept(snakemake.input.frames, videos=kept_videos(snakemake.input.videos)),
    lambda: make_embedder(settings["backend"], snakemake.params.model, model_settings),
    threshold_for(settings),
    snakemake.output.embeddings,
    cache,
    settings["store_dtype"],
)
record["seconds"] = round(time.perf_counter() - started, 3)
write_embed_table(snakemake.output.table, table, record)
logging.info("%d videos: kept %d of %d frames in %.1fs (%.1f frames/s)", record["videos"], record["kept"],
             record["frames"], record["seconds"], record["frames"] / max(record["seconds"], 1e-9))
