"""Export the split frames as WebDataset tars: results/export/webdataset/<split>/shard-XXXXXX.tar,
with its manifest."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import frame_export_inputs
from video_miner.frame_webdataset import write_frames_webdataset
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest

log_to_file(snakemake.log[0])
run = snakemake.params.run
inputs = frame_export_inputs(snakemake.input.frames, snakemake.input.videos, run["run_id"], snakemake.input.captions,
                             snakemake.input.segments, snakemake.input.privacy)
result = write_frames_webdataset(snakemake.output[0], inputs.frames, inputs.videos, snakemake.params.max_frames,
                                 inputs.regions)
write_manifest(snakemake.output[0], run, result["splits"], inputs.provenance, snakemake.input.summary)
logging.info("WebDataset: %d frames %s in tars %s", result["frames"], result["splits"], result["tars"])
for path, reason in result["skipped"]:
    logging.warning("left out %s: %s", path, reason)
