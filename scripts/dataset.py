"""Export the final frames as an imagefolder dataset with metadata.jsonl."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import read_detections, select_frames, write_dataset
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
records = {}
for path in snakemake.input.records:
    record = json.loads(Path(path).read_text())
    records[record["video_id"]] = record
detections = None
if "detections" in snakemake.input.keys():
    detections = read_detections(list(snakemake.input.detections))
    frames = detections
else:
    frames = select_frames(
        unique_path=snakemake.input.get("unique"),
        filter_paths=list(snakemake.input.get("filtered", [])),
        manifest_paths=list(snakemake.input.get("manifests", [])),
    )
result = write_dataset(snakemake.output[0], frames, records, detections)
logging.info("dataset: %d images", result["images"])
