"""Run one YouTube keyword search (no download); the result is cached as JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.download import DownloadOptions
from video_miner.logs import log_to_file
from video_miner.search import SearchOptions, run_search

log_to_file(snakemake.log[0])
settings = snakemake.params.search
options = SearchOptions(max_results=settings["max_results"], min_duration_s=settings["min_duration_s"],
                        max_duration_s=settings["max_duration_s"])
run_search(snakemake.params.query, options, DownloadOptions.from_config(snakemake.params.download),
           snakemake.output[0])
