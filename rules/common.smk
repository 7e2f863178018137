import functools
import os

from snakemake.exceptions import WorkflowError

from video_miner.ids import VIDEO_ID_PATTERN, query_slug
from video_miner.sources import ConfigError, collect_videos, search_result_path

SEARCH_QUERIES = {query_slug(q): q for q in config["search"]["queries"]}


@functools.lru_cache(maxsize=8)
def _collect(search_state):
    try:
        return collect_videos(config)
    except ConfigError as exc:
        raise WorkflowError(f"Invalid configuration: {exc}")


def _search_state():
    """The cached search results as they are now: a rerun of a search changes the key."""
    paths = [search_result_path(q) for q in SEARCH_QUERIES.values()]
    return tuple(os.stat(p).st_mtime_ns if os.path.exists(p) else None for p in paths)


def videos():
    """Every video of the run. Searches are a checkpoint: until each has run, asking
    raises Snakemake's IncompleteCheckpointException, and Snakemake re-evaluates the
    asking input function once the search job is done."""
    for slug in SEARCH_QUERIES:
        checkpoints.search.get(query=slug)
    return _collect(_search_state())


@functools.lru_cache(maxsize=8)
def _shards(search_state):
    return assign_shards(_collect(search_state), config["shard_size"])


def shards():
    videos()  # waits for the searches
    return _shards(_search_state())


for rejected in _collect(_search_state()).rejected:
    logger.warning(f"skipping {rejected['origin']}: {rejected['reason']}")


wildcard_constraints:
    video=VIDEO_ID_PATTERN,


def video_source(wildcards):
    """What to fetch for one video. Where it was listed is left out on purpose: a line
    inserted above it in a list must not re-run its download."""
    source = videos().videos[wildcards.video]
    return {
        "video_id": source.video_id,
        "kind": source.kind,
        "location": source.location,
    }


def local_video_input(wildcards):
    """A local video is the download rule's input, so a rule may produce it (the demo's)."""
    source = videos().videos[wildcards.video]
    return [source.location] if source.kind == "local" else []


from video_miner.models import is_local_model, job_gpus
from video_miner.sources import assign_shards

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
    return expand("results/frames/{video}.parquet", video=shards()[wildcards.shard])


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
    return expand("results/dedup/{shard}", shard=shards())


def summary_inputs(wildcards):
    """Every video's records, and the results of the enabled model stages."""
    inputs = {
        "records": expand("results/videos/{video}.info.json", video=videos().videos),
        "manifests": expand("results/frames/{video}.parquet", video=videos().videos),
    }
    if FILTER["enabled"]:
        inputs["filtered"] = expand("results/filter/{shard}.parquet", shard=shards())
    if DEDUP["enabled"]:
        inputs["unique"] = "results/dedup/unique_frames.parquet"
    if DETECTION["enabled"]:
        inputs["detections"] = all_shard_detections(wildcards)
    if SEARCH_QUERIES:
        inputs["searches"] = all_searches(wildcards)
    return inputs


DETECTION = config["detection"]
VISUALIZE = DETECTION["visualize"]["enabled"]
DATASET = config["dataset"]["enabled"]
UPLOAD_TARGETS = config["upload"]


def final_frame_sources(wildcards):
    """Where the final frames are listed: after dedup, else after the filter, else all."""
    if DEDUP["enabled"]:
        return {"unique": "results/dedup/unique_frames.parquet"}
    if FILTER["enabled"]:
        return {"filtered": expand("results/filter/{shard}.parquet", shard=shards())}
    return {
        "manifests": expand("results/frames/{video}.parquet", video=videos().videos)
    }


def detect_input(wildcards):
    """The final frames of one shard's videos, and the detector when it is a folder."""
    if DEDUP["enabled"]:
        sources = {"unique": "results/dedup/unique_frames.parquet"}
    elif FILTER["enabled"]:
        sources = {"filtered": [f"results/filter/{wildcards.shard}.parquet"]}
    else:
        sources = {"manifests": shard_manifests(wildcards)}
    if DETECTION["model"]:
        sources["model"] = local_model(DETECTION["model"])
    return sources


def shard_videos(wildcards):
    return list(shards()[wildcards.shard])


def all_shard_detections(wildcards):
    return expand("results/detections/shards/{shard}.parquet", shard=shards())


def dataset_input(wildcards):
    inputs = {
        "records": expand("results/videos/{video}.info.json", video=videos().videos)
    }
    if DETECTION["enabled"]:
        inputs["detections"] = all_shard_detections(wildcards)
    else:
        inputs.update(final_frame_sources(wildcards))
    return inputs


def upload_input(wildcards):
    inputs = {"summary": "results/pipeline_result.json", "status": "results/status.tsv"}
    if DATASET:
        inputs["dataset"] = "results/dataset"
    if DETECTION["enabled"]:
        inputs["annotations"] = "results/detections/annotations.json"
    return inputs


def report_input(wildcards):
    inputs = {"summary": "results/pipeline_result.json"}
    if FILTER["enabled"]:
        inputs["filtered"] = expand("results/filter/{shard}.parquet", shard=shards())
    if DETECTION["enabled"]:
        inputs["annotations"] = "results/detections/annotations.json"
    return inputs


def final_outputs(wildcards):
    """What a run makes: the summary and status table, plus each enabled export."""
    outputs = [
        "results/pipeline_result.json",
        "results/status.tsv",
        "results/report/funnel.png",
    ]
    if DETECTION["enabled"]:
        outputs.append("results/detections/annotations.json")
        if VISUALIZE:
            outputs.append("results/detections/visualizations")
    if DATASET:
        outputs.append("results/dataset")
    outputs += expand("results/upload/{target}.done", target=UPLOAD_TARGETS)
    return outputs


wildcard_constraints:
    target="[A-Za-z0-9_-]+",


def upload_target(wildcards):
    return {"name": wildcards.target, "value": UPLOAD_TARGETS[wildcards.target]}


wildcard_constraints:
    query="[a-z0-9._-]+-[0-9a-f]{8}",


def search_query(wildcards):
    return SEARCH_QUERIES[wildcards.query]


def all_searches(wildcards):
    return [search_result_path(q) for q in SEARCH_QUERIES.values()]


def rejected_inputs(wildcards):
    return videos().rejected


def duplicate_inputs(wildcards):
    return videos().duplicates
