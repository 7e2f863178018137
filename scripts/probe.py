"""Probe one shard's downloaded videos: technical metadata, the filters, the hash frames."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.probe import ProbeFilters, probe_shard
from video_miner.tables.video import VIDEO
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
videos = VIDEO.read_kept(snakemake.input.videos, columns=["source", "file", "location", "filesize"])
table, record = probe_shard(videos, snakemake.params.cache, ProbeFilters.from_config(snakemake.params.filters),
                            snakemake.params.hash_frames, workers=snakemake.threads,
                            limits=Limits.from_config(snakemake.params.limits))
record["seconds"] = round(time.perf_counter() - started, 3)
VIDEO.write(snakemake.output[0], table, record)
not_kept = {v: r for v, r, k in zip(*(table.column(c).to_pylist() for c in ("video_id", "reason", "kept"))) if not k}
logging.info("%d videos: %d kept, %d could not be probed, %d rejected by the filters%s", record["videos"],
             record["kept"], record["failed"], record["rejected"], "".join(f"\n  {v}: {r}" for v, r in not_kept.items()))
