"""Score one shard's clips (flash, burned-in text, motion, aesthetics: whichever are
enabled) from one decode pass per video, and write each stage's table."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.clips import read_shard_clips
from video_miner.clipscores import ScoreSettings, clip_scores_shard, write_stage_tables
from video_miner.logs import log_to_file
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
videos, clips = read_shard_clips(snakemake.input.downloads, snakemake.input.videos, snakemake.input.clips,
                                snakemake.input.keep)
settings = ScoreSettings.from_config(snakemake.params.settings, snakemake.params.models)
# Videos decode in parallel, one worker process each; the aesthetic model runs in this
# process afterwards with the job's threads.
workers = max(1, min(snakemake.threads, clips["video_id"].nunique()))
tables, records = clip_scores_shard(clips, videos, snakemake.params.cache, settings, workers=workers,
                                    limits=Limits.from_config(snakemake.params.limits), threads=snakemake.threads)
seconds = round(time.perf_counter() - started, 3)
for i, record in enumerate(records.values()):  # one job: its time counts once, for the first stage
    record["seconds"] = seconds if i == 0 else 0.0
    record["job_seconds"] = seconds
write_stage_tables({name: snakemake.output[name] for name in settings.stages}, tables, records, settings)
first = records[settings.stages[0]]["video_outcomes"]
failed = {v: o["reason"] for v, o in first.items() if not o["ok"]}
logging.info("%d clips of %d videos scored in %.1fs: %s; %d videos failed%s", len(clips), len(first), seconds,
             ", ".join(f"{name} kept {r['kept']} of {r['clips']}" for name, r in records.items()), len(failed),
             "".join(f"\n  {v}: {r}" for v, r in failed.items()))
