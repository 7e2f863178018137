"""Embed a shard's frames, dedup each video in time, write per-video FAISS indexes."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.dedup import embed_shard, shard_frames, threshold_for
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, make_embedder

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.config["models"], "num_workers": snakemake.threads})
frames = shard_frames(snakemake.input.get("filtered"), list(snakemake.input.get("manifests", [])))
record = embed_shard(
    frames,
    lambda: make_embedder(settings["backend"], snakemake.params.model, model_settings),
    threshold_for(settings),
    snakemake.output[0],
    settings["store_dtype"],
)
seconds = time.perf_counter() - started
logging.info("%d videos: kept %d of %d frames in %.1fs (%.1f frames/s)", record["videos"], record["kept"],
             record["frames"], seconds, record["frames"] / max(seconds, 1e-9))
