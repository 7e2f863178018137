"""Export the final frames as an imagefolder dataset with metadata.jsonl."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.export import final_frames, write_dataset
from video_miner.logs import log_to_file
from video_miner.tables.video import VIDEO, kept_videos

log_to_file(snakemake.log[0])
videos = VIDEO.read(list(snakemake.input.videos), columns=["location", "title"])
frames = final_frames(list(snakemake.input.frames), kept_videos(snakemake.input.keep))
result = write_dataset(snakemake.output[0], frames,
                       videos.set_index("video_id").to_dict("index"))
logging.info("dataset: %d images", result["images"])
if result["missing"]:
    logging.warning("%d frames are missing from results/extract and are not in the dataset, e.g. %s",
                    len(result["missing"]), result["missing"][0])
