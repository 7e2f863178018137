"""The faces and licence plates in one shard's final frames: the regions the exporters blur."""

import logging
import sys
import time
from pathlib import Path

import pandas as pd

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
regions = table["regions"].map(len) if len(table) else pd.Series(dtype="int64")
# Under "privacy" in the table's metadata: the summary adds the shards' numbers up (its
# privacy section); the funnel counts the frames checked.
record = {"frames": len(table), "frames_with_regions": int((regions > 0).sum()),
          "regions": int(regions.sum()), "unreadable": int((~table["kept"]).sum()) if len(table) else 0,
          "classes": list(settings.classes), "from_detection": list(snakemake.params.detected)}
seconds = round(time.perf_counter() - started, 3)
FRAME.write(snakemake.output[0], FRAME.table(table, *PRIVACY_FIELDS), {"privacy": record, "seconds": seconds})
logging.info("%d frames, %d with regions to blur (%d regions) in %.1fs", record["frames"],
             record["frames_with_regions"], record["regions"], seconds)
for row in table[~table["kept"]].itertuples(index=False) if len(table) else ():
    logging.warning("%s: %s", row.frame_id, row.reason)
