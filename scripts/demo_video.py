"""Render one demo clip from scikit-image's bundled photos."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.synth import make_demo_clip

log_to_file(snakemake.log[0])
make_demo_clip(snakemake.wildcards.clip, snakemake.output[0])
