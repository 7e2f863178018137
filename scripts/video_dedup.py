"""Group copies of the same video across the run; write the table and duplicates.json."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.fsutil import write_json_atomic
from video_miner.logs import log_to_file
from video_miner.tables.video import VIDEO
from video_miner.videodedup import VideoDedupSettings, dedup_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
table, duplicates, record = dedup_videos(list(snakemake.input), VideoDedupSettings.from_config(snakemake.params.settings),
                                         threads=snakemake.threads)
record["seconds"] = round(time.perf_counter() - started, 3)
VIDEO.write(snakemake.output.table, table, record)
write_json_atomic(snakemake.output.duplicates, duplicates)
logging.info("%d videos: %d duplicates in %d groups", record["videos"], record["duplicates"], record["groups"])
