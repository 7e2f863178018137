"""The faces and licence plates in one shard's final frames: the regions the exporters blur."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.logs import log_to_file
from video_miner.privacy import PRIVACY_FIELDS, PrivacySettings, privacy_table
from video_miner.tables.frame import FRAME
from video_miner.tables.video import kept_videos

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = PrivacySettings.from_config(snakemake.params.settings)
frames = FRAME.read_kept(snakemake.input.frames, shard=snakemake.wildcards.shard,
                        videos=kept_videos(snakemake.input.videos))
table = privacy_table(frames, settings, snakemake.params.detected, threads=snakemake.threads)
with_regions = int(table["regions"].map(len).astype(bool).sum()) if len(table) else 0
record = {"frames": len(table), "frames_with_regions": with_regions,
          "regions": int(table["regions"].map(len).sum()) if len(table) else 0,
          "classes": list(settings.classes), "from_detection": list(snakemake.params.detected),
          "seconds": round(time.perf_counter() - started, 3)}
FRAME.write(snakemake.output[0], FRAME.table(table, *PRIVACY_FIELDS), record)
logging.info("%d frames, %d with regions to blur (%d regions) in %.1fs", record["frames"], with_regions,
             record["regions"], record["seconds"])
for row in table[~table["kept"]].itertuples(index=False) if len(table) else ():
    logging.warning("%s: %s", row.frame_id, row.reason)
