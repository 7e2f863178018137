"""Download (or ingest) one shard's videos; failures are recorded in the table, not raised."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.archives import ArchiveSettings
from video_miner.download import DownloadOptions, download_shard
from video_miner.logs import log_to_file
from video_miner.tables.video import VIDEO
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
table, record = download_shard(
    snakemake.params.sources,
    snakemake.output.files,
    snakemake.params.cache,
    DownloadOptions.from_config(snakemake.params.options),
    snakemake.params.local_mode,
    snakemake.params.keep_videos,
    workers=snakemake.resources.downloads,
    limits=Limits.from_config(snakemake.params.limits),
    archives=ArchiveSettings.from_params(snakemake.params.archives) if snakemake.params.archives else None,
)
record["seconds"] = round(time.perf_counter() - started, 3)
VIDEO.write(snakemake.output.table, table, record)
logging.info("%d videos: %d ok, %d failed", record["videos"], record["ok"], record["failed"])
