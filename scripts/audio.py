"""Speech to text for one shard's kept videos: the audio stage's video table and the segments."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the library, also inside conda envs

from video_miner.audio import AudioSettings, WhisperTranscriber, decode_isolation, transcribe_videos
from video_miner.extract import videos_to_extract
from video_miner.logs import log_to_file
from video_miner.models import ModelSettings
from video_miner.tables.video import VIDEO, kept_videos
from video_miner.texts import write_segments
from video_miner.workers import Limits

log_to_file(snakemake.log[0])
started = time.perf_counter()
settings = AudioSettings.from_config(snakemake.params.settings)
model_settings = ModelSettings.from_config({**snakemake.params.models, "num_workers": snakemake.threads})
videos = videos_to_extract(VIDEO.read_kept(snakemake.input.downloads, columns=["file", "location", "filesize"]),
                           VIDEO.read_kept(snakemake.input.videos, columns=["duration_s"]))
keep = kept_videos(snakemake.input.keep)  # without the copies video_dedup drops
if keep is not None:
    videos = videos[videos["video_id"].isin(set(keep))]
files = dict(zip(videos["video_id"], videos["file"]))
sources = {v: [loc, int(size)] for v, loc, size in zip(videos["video_id"], videos["location"], videos["filesize"])}
table, segments, record = transcribe_videos(files, snakemake.params.cache, settings,
                                            lambda: WhisperTranscriber(settings, model_settings), sources,
                                            decode_isolation(Limits.from_config(snakemake.params.limits),
                                                             dict(zip(videos["video_id"], videos["duration_s"])),
                                                             dict(zip(videos["video_id"], videos["filesize"]))))
record_seconds = round(time.perf_counter() - started, 3)
write_segments(snakemake.output.segments, segments)
VIDEO.write(snakemake.output.table, table, {"audio": record, "seconds": record_seconds})
logging.info("%d videos: %d with speech, %d without an audio track, %d failed; %d segments in %.1fs",
             record["videos"], record["transcribed"], record["no_audio"], record["failed"], record["segments"],
             record_seconds)
