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
    """What to fetch for one video. Where it was listed is left out on purpose: a line
    inserted above it in a list must not re-run its download."""
    source = VIDEOS.videos[wildcards.video]
    return {
        "video_id": source.video_id,
        "kind": source.kind,
        "location": source.location,
    }


def local_video_input(wildcards):
    """A local video is the download rule's input, so a rule may produce it (the demo's)."""
    source = VIDEOS.videos[wildcards.video]
    return [source.location] if source.kind == "local" else []


from video_miner.models import is_local_model, job_gpus
from video_miner.sources import assign_shards

SHARDS = assign_shards(VIDEOS, config["shard_size"])
MODEL_GPUS = job_gpus(config["models"]["device"])
FILTER = config["filter"]
DEDUP = config["dedup"]
DEDUP_MODEL = FILTER["model"] if DEDUP["model"] == "filter" else DEDUP["model"]
# What per-shard embeddings depend on; search settings only affect the cross-video step.
EMBED_SETTINGS = {
    key: DEDUP[key]
    for key in ("backend", "threshold", "phash_max_distance", "store_dtype")
}


wildcard_constraints:
    shard="[A-Za-z0-9_-]+",


def shard_manifests(wildcards):
    return expand("results/frames/{video}.parquet", video=SHARDS[wildcards.shard])


def local_model(model):
    """A model folder is an input (a rule may make it, as the demo's); hub ids are not."""
    return [model] if is_local_model(model) else []


def filter_model_input(wildcards):
    return local_model(FILTER["model"])


def embed_input(wildcards):
    """Frames that passed the filter, or every extracted frame when it is off."""
    if FILTER["enabled"]:
        frames = {"filtered": f"results/filter/{wildcards.shard}.parquet"}
    else:
        frames = {"manifests": shard_manifests(wildcards)}
    if DEDUP["backend"] == "model":
        frames["model"] = local_model(DEDUP_MODEL)
    return frames


def all_shard_dedup(wildcards):
    return expand("results/dedup/{shard}", shard=SHARDS)


def summary_inputs(wildcards):
    """Every video's records, and the results of the enabled model stages."""
    inputs = {
        "records": expand("results/videos/{video}.info.json", video=VIDEOS.videos),
        "manifests": expand("results/frames/{video}.parquet", video=VIDEOS.videos),
    }
    if FILTER["enabled"]:
        inputs["filtered"] = expand("results/filter/{shard}.parquet", shard=SHARDS)
    if DEDUP["enabled"]:
        inputs["unique"] = "results/dedup/unique_frames.parquet"
    return inputs
