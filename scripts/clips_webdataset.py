"""The kept, cut clips as WebDataset tars: results/export/clips/shard-XXXXXX.tar."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.clips import write_webdataset
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest

log_to_file(snakemake.log[0])
result = write_webdataset(snakemake.output[0], Path(snakemake.input.metadata).parent, snakemake.params.max_clips)
write_manifest(snakemake.output[0], snakemake.params.run, {"clips": result["clips"]}, summary=snakemake.input.summary)
logging.info("WebDataset: %d clips in %d tars", result["clips"], result["tars"])
