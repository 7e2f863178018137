"""Dedup the per-video kept frames across all videos; write the index and the table."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.dedup import SearchSettings, cross_video, threshold_for, write_index
from video_miner.logs import log_to_file
from video_miner.tables.frame import FRAME

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = snakemake.params.settings
search = SearchSettings(exact_max=settings["exact_search_max"], nlist=settings["ivf_nlist"],
                        nprobe=settings["ivf_nprobe"])
table, index = cross_video(list(snakemake.input.tables), list(snakemake.input.embeddings), snakemake.params.shards,
                           threshold_for(settings), search)
write_index(snakemake.output.index, index)
kept = sum(table.column("kept").to_pylist())
record = {"frames": table.num_rows, "kept": kept, "threshold": threshold_for(settings),
          "seconds": round(time.perf_counter() - started, 3)}
FRAME.write(snakemake.output.table, table, record)
logging.info("%d unique of %d frames across videos", kept, table.num_rows)
