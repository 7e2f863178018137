"""Sample frames of one shard's downloaded videos into its folder and frame table."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.extract import ExtractOptions, extract_shard, videos_to_extract
from video_miner.logs import log_to_file
from video_miner.tables.clip import CLIP
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
videos = videos_to_extract(VIDEO.read_kept(snakemake.input.downloads, columns=["source", "file", "location", "filesize"]),
                           VIDEO.read_kept(snakemake.input.videos, columns=["duration_s"]))
# Videos in parallel, one thread each: on a few cores that beats threads inside one decoder.
options = ExtractOptions(**snakemake.params.options, threads=1)
# strategy scene: the kept clips of the clip stage the registry says extraction reads
clips = CLIP.read_kept(snakemake.input.clips) if "clips" in snakemake.input.keys() else None
table, record = extract_shard(videos, snakemake.output.frames, snakemake.params.cache, options,
                              workers=snakemake.threads, limits=Limits.from_config(snakemake.params.limits),
                              clips=clips, image_extensions=snakemake.params.image_extensions)
record["seconds"] = round(time.perf_counter() - started, 3)
FRAME.write(snakemake.output.table, table, record)
failed = {v: o["reason"] for v, o in record["video_outcomes"].items() if not o["ok"]}
logging.info("%d videos, %d frames in %.1fs; %d failed%s", len(record["video_outcomes"]), record["frames"],
             record["seconds"], len(failed), "".join(f"\n  {v}: {r}" for v, r in failed.items()))
