"""Cut one shard's kept clips into mp4 files (stream copy on keyframes, else H.264)."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.clips import CutSettings, cut_shard, read_shard_clips
from video_miner.logs import log_to_file
from video_miner.tables.clip import CLIP
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
videos, clips = read_shard_clips(snakemake.input.downloads, snakemake.input.videos, snakemake.input.clips,
                                snakemake.input.keep)
table, record = cut_shard(clips, videos, snakemake.output.files, snakemake.params.cache,
                          CutSettings.from_config(snakemake.params.settings), workers=snakemake.threads,
                          limits=Limits.from_config(snakemake.params.limits))
Path(snakemake.output.files).mkdir(parents=True, exist_ok=True)
record["seconds"] = round(time.perf_counter() - started, 3)
CLIP.write(snakemake.output.table, table, record)
failed = {v: o["reason"] for v, o in record["video_outcomes"].items() if not o["ok"]}
logging.info("%d clips cut (%d stream copies) in %.1fs; %d videos failed%s", record["clips"], record["copied"],
             record["seconds"], len(failed), "".join(f"\n  {v}: {r}" for v, r in failed.items()))
