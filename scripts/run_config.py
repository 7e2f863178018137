"""Record the configuration the run ran with (defaults filled, secrets redacted), for
`video-miner status`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.registry import write_run_config

log_to_file(snakemake.log[0])
write_run_config(snakemake.output[0], dict(snakemake.params.config))
