"""Sample frames of one video into a folder and a parquet manifest."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.download import ensure_video
from video_miner.extract import ExtractOptions, ExtractResult, extract_video, write_manifest
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
record = json.loads(Path(snakemake.input[0]).read_text())
options = ExtractOptions(**snakemake.params.options, threads=snakemake.threads)
video_id = snakemake.wildcards.video
record = ensure_video(record, snakemake.config)
if record["status"] == "ok":
    result = extract_video(record["file"], snakemake.output.frames, video_id, options)
    if not snakemake.config["keep_videos"]:
        Path(record["file"]).unlink(missing_ok=True)  # the record stays; extract fetches again if needed
else:
    # A failed download is an empty video here; its reason stays with the download record.
    Path(snakemake.output.frames).mkdir(parents=True, exist_ok=True)
    result = ExtractResult([], "skipped", record.get("reason") or "download failed", 0, 0, 0)
logging.info("%s: %s, %d frames extracted of %d (%d decoded, %d decode errors) in %.2fs%s", video_id,
             result.status, len(result.rows), result.frames_in_video, result.frames_decoded, result.decode_errors,
             result.seconds, f" ({result.reason})" if result.reason else "")
write_manifest(snakemake.output.manifest, result.rows, result.metadata(video_id, options))
