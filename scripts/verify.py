"""Verify a shard's boxes: each box's crop scored against its class's prompt (SigLIP2);
boxes under the threshold dropped, with the reason."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, SiglipScorer, model_key
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos
from video_miner.verify import verify_frames

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
# The crop scores depend on the checkpoint, prompts and crops, not on the threshold.
scored_with = {k: settings[k] for k in ("classes", "verify_template", "verify_padding")}
cache = VideoCache(snakemake.params.cache, {**model_key(settings["model"], model_settings), **scored_with})
frames = FRAME.read_kept(snakemake.input.frames, videos=kept_videos(snakemake.input.videos))
table, record = verify_frames(frames, lambda prompts: SiglipScorer(settings["model"], model_settings, prompts),
                              settings, cache, workers=snakemake.threads)
record["seconds"] = round(time.perf_counter() - started, 3)
FRAME.write(snakemake.output[0], table, record)
logging.info("%d frames: kept %s boxes, dropped %s under %g; crop scores %s; in %.1fs", record["frames"],
             record["detections"], record["dropped"], record["threshold"], record["verify_scores"], record["seconds"])
