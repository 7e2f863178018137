"""Write the Label Studio import file (boxes as predictions) and its labeling config."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.labelstudio import write_label_studio
from video_miner.logs import log_to_file
from video_miner.splits import split_frames

log_to_file(snakemake.log[0])
count = write_label_studio(snakemake.output.tasks, snakemake.output.config, split_frames(snakemake.input[0]),
                           snakemake.params.classes, snakemake.params.url_prefix, snakemake.params.backend)
logging.info("%d tasks", count)
