"""Upload the results to one target; the marker is written only when all are verified."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.upload import UploadTarget, collect_files, upload

log_to_file(snakemake.log[0])
target = UploadTarget.from_config(snakemake.params.target["name"], snakemake.params.target["value"])
sources = [(snakemake.input.summary, "pipeline_result.json"), (snakemake.input.status, "status.tsv")]
if "dataset" in snakemake.input.keys():
    sources.append((snakemake.input.dataset, ""))
if "annotations" in snakemake.input.keys():
    sources.append((snakemake.input.annotations, "annotations.json"))
    sources += [(path, Path(path).name) for path in snakemake.input.split_annotations]
    sources.append((snakemake.input.annotations_manifest, "annotations.manifest.json"))
if "points" in snakemake.input.keys():  # Moondream's points (COCO keypoints), all splits and one file each
    sources += [(path, Path(path).name) for path in snakemake.input.points]
if "clips" in snakemake.input.keys():  # the clip export: metadata, files, and the WebDataset tars
    sources += [(path, f"clips/{Path(path).name}") for path in snakemake.input.clips]
    sources.append((snakemake.input.clip_files, "clips/files"))
    sources.append((snakemake.input.clips_manifest, "clips/manifest.json"))
if "clips_webdataset" in snakemake.input.keys():
    sources.append((snakemake.input.clips_webdataset, "export/clips"))
if "webdataset" in snakemake.input.keys():  # the frames' WebDataset tars, a folder per split
    sources.append((snakemake.input.webdataset, "export/webdataset"))
marker = Path(snakemake.output[0])
record = upload(target, collect_files(sources), marker, marker.with_name(f".{marker.stem}.journal.jsonl"))
logging.info("%s: %d files (%d uploaded, %d already there), %d bytes", target.name, record["file_count"],
             record["uploaded"], record["skipped_already_uploaded"], record["bytes"])
