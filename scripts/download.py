"""Download (or ingest) one video and write its record; failures are recorded, not raised."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.download import DownloadOptions, download_url, ingest_local, write_record
from video_miner.logs import log_to_file

log_to_file(snakemake.log[0])
source = snakemake.params.source
out_dir = Path(snakemake.output[0]).parent
if source["kind"] == "local":
    record = ingest_local(source["location"], out_dir, source["video_id"], snakemake.config["local_mode"])
else:
    options = DownloadOptions.from_config(snakemake.config["download"])
    record = download_url(source["location"], out_dir, source["video_id"], options)
write_record(snakemake.output[0], record)
