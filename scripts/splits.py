"""Split the final frames into train/val/test by video groups; apply the caps."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.blur import unchecked_frames
from video_miner.export import final_frames
from video_miner.logs import log_to_file
from video_miner.provenance import load_takedown, taken_down
from video_miner.splits import SplitSettings, describe, make_splits, write_split_tables
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO, kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = SplitSettings.from_config(snakemake.params.settings)
gate = list(snakemake.input.videos)
frames = final_frames(list(snakemake.input.frames), kept_videos(gate))
# Copies (video_dedup's table, all rows) and cross-video duplicate frames (dedup's table) link videos.
copies = VIDEO.read(gate, columns=["duplicate_of"]) if gate else None
links = FRAME.read(list(snakemake.input.links), columns=["frame_id", "duplicate_of"]) if snakemake.input.links else None
removed = taken_down(load_takedown(snakemake.params.takedown, snakemake.input.takedown),
                     VIDEO.read(list(snakemake.input.downloads)))
# With privacy on, a frame it could not check goes into no export.
unchecked = unchecked_frames(snakemake.input.privacy, frames["frame_id"]) if snakemake.input.privacy else set()
videos, frames, record = make_splits(frames, copies, links, settings, removed, unchecked)
record["seconds"] = round(time.perf_counter() - started, 3)
write_split_tables(snakemake.output.videos, snakemake.output.frames, videos, frames, record)
report = record["report"]
logging.info("%s; capped %s", describe(report), report["capped"])
for note in report["notes"]:
    logging.warning("splits: %s", note)
if unchecked:
    logging.warning("privacy: %d frames could not be checked and are in no export", len(unchecked))
if removed:
    logging.info("takedown: %d videos, %d frames removed", len(removed), record["takedown"]["frames"])
