"""Captions for one shard's final frames and kept clips; one row per item."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.captions import (CaptionSettings, ItemCache, SpendLedger, caption_items, clip_isolation, clip_items,
                                  frame_items, ledger_path, make_captioner)
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings
from video_miner.shardjob import fingerprint
from video_miner.tables import write_parquet
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = CaptionSettings.from_config(snakemake.params.settings)
keep = kept_videos(snakemake.input.keep)
items = []
isolation = None
if snakemake.input.frames:
    # The stage before may be the cross-video table, which covers every shard: this shard's rows.
    frames = FRAME.read_kept(snakemake.input.frames, shard=snakemake.wildcards.shard, videos=keep)
    items += frame_items(frames)
if snakemake.input.clips:
    from video_miner.clips import read_shard_clips, shard_videos

    videos, clips = read_shard_clips(snakemake.input.downloads, snakemake.input.probes, snakemake.input.clips,
                                     snakemake.input.keep)
    clips = clips[clips["video_id"].isin(set(videos["video_id"]))]
    known = shard_videos(clips, videos)
    sources = {v: [loc, int(size)] for v, loc, size in zip(videos["video_id"], videos["location"], videos["filesize"])}
    items += clip_items(clips, known.files, sources, settings.frames_for_clip())
    isolation = clip_isolation(Limits.from_config(snakemake.params.limits), known.durations, known.sizes)
# The api backend sends as many requests at once as the job got of api_requests.
workers = int(getattr(snakemake.resources, "api_requests", 0) or 0) or None
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
cache = ItemCache(snakemake.params.cache, settings)
ledger = SpendLedger(ledger_path(snakemake.params.cache, settings), settings.max_items, settings.max_total_tokens)
table, record = caption_items(items, lambda: make_captioner(settings, workers, model_settings), cache, ledger,
                              workers=workers or 1, model=settings.model, isolation=isolation)
outcomes = record.pop("video_outcomes")
record["seconds"] = round(time.perf_counter() - started, 3)
write_parquet(snakemake.output[0], table, {"level": "item", "captions": record, "video_outcomes": outcomes,
                                           "seconds": record["seconds"],
                                           "settings_key": fingerprint(settings.cache_key())})
logging.info("%d frames and %d clips: %d captioned (%d from the cache, %d sent), %d tokens, in %.1fs",
             record["frames"], record["clips"], record["captioned"], record["cached"], record["sent"],
             record["tokens"]["total"], record["seconds"])
for reason, count in record["failed"].items():
    logging.warning("%d items not captioned: %s", count, reason)
