"""Open-set detection on one shard's frames; one row per frame with its boxes."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.detection import DetectionSettings, detect_frames, make_detector
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings, model_key
from video_miner.shardjob import VideoCache
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = DetectionSettings.from_config(snakemake.params.settings)
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
# format 2: a frame's cached result holds its boxes and points (a failed request is never cached).
# How requests are sent (api: workers, timeouts, retries) changes no result.
results_depend_on = {k: v for k, v in snakemake.params.settings.items() if k != "api"}
cache = VideoCache(snakemake.params.cache, {**model_key(settings.model, model_settings), **results_depend_on,
                                            "format": 2})
# The stage before may be the cross-video table, which covers every shard: this shard's rows.
frames = FRAME.read_kept(snakemake.input.frames, shard=snakemake.wildcards.shard,
                        videos=kept_videos(snakemake.input.videos))
table, record = detect_frames(frames, lambda: make_detector(settings, model_settings), settings.classes, cache)
record.update(backend=settings.backend, model=settings.model, seconds=round(time.perf_counter() - started, 3))
FRAME.write(snakemake.output[0], table, record)
logging.info("%d frames, %d with detections, %s in %.1fs (%.1f frames/s)", record["frames"],
             record["frames_with_detections"], record["detections"], record["seconds"],
             record["frames"] / max(record["seconds"], 1e-9))
for reason, count in record["api_errors"].items():
    logging.warning("%d frames not detected: %s", count, reason)
if record["api_errors"]:
    logging.warning("snakemake --forcerun detect asks again for just these frames (the others come from the cache)")
