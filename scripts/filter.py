"""Score a shard's frames against the text prompts (SigLIP2/SigLIP) and mark which pass."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.filtering import filter_shard, write_filter_table
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, SiglipScorer

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.config["models"], "num_workers": snakemake.threads})
table, record = filter_shard(
    list(snakemake.input.manifests),
    lambda classes: SiglipScorer(settings["model"], model_settings, classes),
    settings,
)
record["seconds"] = round(time.perf_counter() - started, 3)
write_filter_table(snakemake.output[0], table, record)
logging.info("%d of %d frames passed in %.1fs (%.1f frames/s)", record["passed"], record["frames"],
             record["seconds"], record["frames"] / max(record["seconds"], 1e-9))
