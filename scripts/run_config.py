"""Record the configuration the run ran with (defaults filled, secrets redacted), for
`video-miner status`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

import yaml

from video_miner.config import redacted
from video_miner.fsutil import write_text_atomic
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
write_text_atomic(snakemake.output[0], yaml.safe_dump(redacted(dict(snakemake.params.config)), sort_keys=False))
