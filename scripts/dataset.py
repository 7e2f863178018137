"""Export the split frames as an imagefolder dataset: <split>/images/... and <split>/metadata.parquet,
with its manifest."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import frame_export_inputs, write_dataset
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest

log_to_file(snakemake.log[0])
run = snakemake.params.run
# With privacy on, the regions to blur (recorded in the metadata as blurred_regions).
inputs = frame_export_inputs(snakemake.input.frames, snakemake.input.videos, run["run_id"], snakemake.input.captions,
                             snakemake.input.segments, snakemake.input.privacy)
result = write_dataset(snakemake.output[0], inputs.frames, inputs.videos, inputs.regions)
write_manifest(snakemake.output[0], run, result["splits"], inputs.provenance, snakemake.input.summary)
logging.info("dataset: %d images %s", result["images"], result["splits"])
if result["missing"]:
    logging.warning("%d frames are missing from results/extract and are not in the dataset, e.g. %s",
                    len(result["missing"]), result["missing"][0])
