"""Dedup the per-video kept frames across all videos; write the index and the table."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.dedup import SearchSettings, cross_video, threshold_for, write_index
from video_miner.logs import log_to_file
from video_miner.tables import write_parquet

log_to_file(snakemake.log[0])
settings = snakemake.params.settings
search = SearchSettings(exact_max=settings["exact_search_max"], nlist=settings["ivf_nlist"],
                        nprobe=settings["ivf_nprobe"])
table, index = cross_video(list(snakemake.input), threshold_for(settings), search)
write_index(snakemake.output.index, index)
kept = sum(table.column("kept").to_pylist())
write_parquet(snakemake.output.table, table, {"frames": table.num_rows, "unique": kept, "threshold": threshold_for(settings)})
logging.info("%d unique of %d frames across videos", kept, table.num_rows)
