"""Export the split frames as WebDataset tars: results/export/webdataset/<split>/shard-XXXXXX.tar,
with its manifest."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import PROVENANCE, with_text
from video_miner.frame_webdataset import write_frames_webdataset
from video_miner.logs import log_to_file
from video_miner.manifest import write_manifest
from video_miner.provenance import video_provenance
from video_miner.splits import split_frames
from video_miner.tables.video import VIDEO
from video_miner.texts import read_captions, read_segments

log_to_file(snakemake.log[0])
run = snakemake.params.run
downloads = VIDEO.read(list(snakemake.input.videos))
provenance = video_provenance(downloads, run["run_id"])
videos = downloads.reindex(columns=["video_id", *PROVENANCE]).set_index("video_id").to_dict("index")
videos = {v: {**row, **provenance[v]} for v, row in videos.items()}
frames = with_text(split_frames(snakemake.input.frames),
                   read_captions(snakemake.input.captions) if snakemake.input.captions else None,
                   read_segments(snakemake.input.segments) if snakemake.input.segments else None)
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
result = write_frames_webdataset(snakemake.output[0], frames, videos, snakemake.params.max_frames, regions)
write_manifest(snakemake.output[0], run, result["splits"],
               {v: provenance[v] for v in sorted(set(frames["video_id"])) if v in provenance}, snakemake.input.summary)
logging.info("WebDataset: %d frames %s in tars %s", result["frames"], result["splits"], result["tars"])
for path, reason in result["skipped"]:
    logging.warning("left out %s: %s", path, reason)
