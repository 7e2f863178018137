from dataclasses import asdict

from snakemake.exceptions import WorkflowError

from video_miner.ids import VIDEO_ID_PATTERN
from video_miner.sources import ConfigError, collect_videos

try:
    VIDEOS = collect_videos(config)
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}")

for rejected in VIDEOS.rejected:
    logger.warning(f"skipping {rejected['origin']}: {rejected['reason']}")


wildcard_constraints:
    video=VIDEO_ID_PATTERN,


def video_source(wildcards):
    """The listing of one video (kind, URL or path, where it was listed)."""
    return asdict(VIDEOS.videos[wildcards.video])


def local_video_input(wildcards):
    """A local video is the download rule's input, so a rule may produce it (the demo's)."""
    source = VIDEOS.videos[wildcards.video]
    return [source.location] if source.kind == "local" else []


def all_download_records(wildcards):
    return expand("results/videos/{video}.info.json", video=VIDEOS.videos)


def all_frame_manifests(wildcards):
    return expand("results/frames/{video}.parquet", video=VIDEOS.videos)
