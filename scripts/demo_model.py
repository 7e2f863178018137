"""Build a tiny random-weight checkpoint (offline stand-in for a real one)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.tiny_models import BUILDERS

log_to_file(snakemake.log[0])
BUILDERS[snakemake.wildcards.name](snakemake.output[0])
