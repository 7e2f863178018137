"""Export the split frames as WebDataset tars: results/export/webdataset/<split>/shard-XXXXXX.tar."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import read_regions
from video_miner.export import PROVENANCE, with_text
from video_miner.frame_webdataset import write_frames_webdataset
from video_miner.logs import log_to_file
from video_miner.splits import split_frames
from video_miner.tables.video import VIDEO
from video_miner.texts import read_captions, read_segments

log_to_file(snakemake.log[0])
videos = VIDEO.read(list(snakemake.input.videos)).reindex(columns=["video_id", *PROVENANCE])
frames = with_text(split_frames(snakemake.input.frames),
                   read_captions(snakemake.input.captions) if snakemake.input.captions else None,
                   read_segments(snakemake.input.segments) if snakemake.input.segments else None)
regions = read_regions(snakemake.input.privacy) if snakemake.input.privacy else None  # privacy on
result = write_frames_webdataset(snakemake.output[0], frames, videos.set_index("video_id").to_dict("index"),
                                 snakemake.params.max_frames, regions)
logging.info("WebDataset: %d frames %s in tars %s", result["frames"], result["splits"], result["tars"])
for path, reason in result["skipped"]:
    logging.warning("left out %s: %s", path, reason)
