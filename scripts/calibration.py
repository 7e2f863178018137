"""Score a seeded random sample of clips across shards with every enabled score stage,
dropping nothing: quantiles, suggested thresholds, raw scores and histograms."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.clipscores import ScoreSettings, calibrate, calibration_sample, score_clips, write_calibration
from video_miner.extract import videos_to_extract
from video_miner.logs import log_to_file
from video_miner.tables.clip import CLIP
from video_miner.tables.video import VIDEO, kept_videos
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
calibration = snakemake.params.calibration
videos = videos_to_extract(VIDEO.read_kept(list(snakemake.input.downloads), columns=["file", "location", "filesize"]),
                           VIDEO.read_kept(list(snakemake.input.videos), columns=["duration_s"]))
clips = CLIP.read_kept(list(snakemake.input.clips), videos=kept_videos(snakemake.input.keep))
sample = calibration_sample(clips, calibration["sample_size"], calibration["seed"])
settings = ScoreSettings.from_config(snakemake.params.settings, snakemake.params.models)
workers = max(1, min(snakemake.threads, sample["video_id"].nunique()))
scores, _ = score_clips(sample, videos, snakemake.params.cache, settings, settings.filters(record_only=True),
                        workers=workers, limits=Limits.from_config(snakemake.params.limits), threads=snakemake.threads)
result = calibrate(scores, settings, calibration["quantiles"], calibration["keep_rate"])
result.update(sample_size=calibration["sample_size"], seed=calibration["seed"],
              seconds=round(time.perf_counter() - started, 3))
write_calibration(dict(snakemake.output.items()), scores, result, settings)
logging.info("calibration: %d of %d clips scored in %.1fs; suggested %s (together they keep %s)",
             result["clips_scored"], len(clips), result["seconds"],
             ", ".join(f"{s['key']} {s['threshold']}" for s in result["suggested"].values()), result["joint_keeps"])
