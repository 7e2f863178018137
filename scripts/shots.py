"""Split one shard's videos into shots (or windows): the shard's clip table."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.extract import videos_to_extract
from video_miner.logs import log_to_file
from video_miner.shots import ShotSettings, make_detector, shots_shard
from video_miner.tables.clip import CLIP
from video_miner.tables.video import VIDEO
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
videos = videos_to_extract(VIDEO.read_kept(snakemake.input.downloads, columns=["file", "location", "filesize"]),
                           VIDEO.read_kept(snakemake.input.videos, columns=["duration_s"]))
settings = ShotSettings.from_config(snakemake.params.settings)
# Videos in parallel, one worker process each; a model's threads share the job's cores.
# A worker that loads TransNetV2 on a GPU holds that device for its life (claim_gpu), so a
# job given a GPU runs one worker: a second would wait on the device until timed out.
workers = 1 if snakemake.resources.get("gpu") else max(1, min(snakemake.threads, len(videos)))
threads = max(1, snakemake.threads // workers)
table, record = shots_shard(videos, snakemake.params.cache, settings, workers=workers,
                            limits=Limits.from_config(snakemake.params.limits),
                            detector_factory=lambda: make_detector(settings, threads, snakemake.params.device))
record["seconds"] = round(time.perf_counter() - started, 3)
CLIP.write(snakemake.output[0], table, record)
failed = {v: o["reason"] for v, o in record["video_outcomes"].items() if not o["ok"]}
logging.info("%d videos, %d clips (%d kept) in %.1fs; %d failed%s", len(record["video_outcomes"]), record["clips"],
             record["kept"], record["seconds"], len(failed), "".join(f"\n  {v}: {r}" for v, r in failed.items()))
