import functools
import hashlib
import os
import time

from snakemake.exceptions import WorkflowError

from video_miner.modellist import config_models
from video_miner.ids import query_slug
from video_miner.images import KIND as IMAGES, folder_images
from video_miner.models import is_local_model, job_gpus
from video_miner.provenance import result_config, run_id
from video_miner.splits import active_splits, full_ratios
from video_miner.sources import (
    ConfigError,
    archive_inputs,
    assign_shards,
    collect_videos,
    input_files,
    search_result_path,
)
from video_miner.storage import ROOT_ENV, root_for
from video_miner.stages import (
    API_BACKENDS,
    SHARD_PATTERN,
    STAGES,
    box_stage,
    cross_upstream,
    enabled_stages,
    final_stage,
    stage,
    upstream,
    video_gate,
)


def storage_root():
    """Where Snakemake stages the run's files when they live on object storage
    (--default-storage-provider), '' for a local run. Jobs inherit it (ROOT_ENV) to find
    the workflow files their tables name (video_miner.storage)."""
    provider = workflow.storage_registry.default_storage_provider
    if provider is None:
        return ""
    prefix = (workflow.storage_settings.default_storage_prefix or "").rstrip("/")
    probe = "results/run_config.yaml"
    query = f"{prefix}/{probe}" if prefix else probe
    return root_for(provider.object(query).local_path(), probe)


STORAGE_ROOT = storage_root()
os.environ[ROOT_ENV] = STORAGE_ROOT
if STORAGE_ROOT and config["local_mode"] == "in_place":
    raise WorkflowError(
        "local_mode: in_place has later jobs read your files where they are, which is not "
        "their declared input: on object storage use local_mode: link (the default) or copy"
    )
SEARCH_QUERIES = {query_slug(q): q for q in config["search"]["queries"]}
ENABLED = [s.name for s in enabled_stages(config)]
MODEL_GPUS = job_gpus(config["models"]["device"])
FILTER = config["filter"]
DEDUP = config["dedup"]
DEDUP_MODEL = FILTER["model"] if DEDUP["model"] == "filter" else DEDUP["model"]
# What per-shard embeddings depend on; search settings only affect the cross-video step.
EMBED_SETTINGS = {
    key: DEDUP[key]
    for key in ("backend", "threshold", "phash_max_distance", "store_dtype")
}
# Rule parameters hold what changes a result, so a change reruns exactly those jobs:
# not download concurrency, not the other search queries, not drawing settings.
DOWNLOAD_OPTIONS = {k: v for k, v in config["download"].items() if k != "workers"}
SEARCH_OPTIONS = {k: v for k, v in config["search"].items() if k != "queries"}
# Each isolated stage's jobs get only their own limits as params (the shared memory cap
# and its <stage>_* keys): raising the extraction time limit reruns extraction (retrying
# its failed videos), not the downloads.
STAGE_LIMITS = {
    name: {
        k: v
        for k, v in config["limits"].items()
        if k == "memory_gb" or k.startswith(f"{name}_")
    }
    for name in ("download", "probe", "clips", "extract")
}
# What an archive shard's members depend on (its list files and CSV default are not:
# each archive's own CSV is in its source).
ARCHIVES = {
    k: v for k, v in config["archives"].items() if k not in ("inputs", "lists", "csv")
}
VIDEO_DEDUP = config["video_dedup"]
# Hash frames are computed with the probe only when video_dedup will group them.
HASH_FRAMES = VIDEO_DEDUP["frames"] if VIDEO_DEDUP["enabled"] else 0
GATE = video_gate(config)
EMBED_MODEL = DEDUP_MODEL if DEDUP["backend"] == "model" else None
EMBED_MODELS = config["models"] if EMBED_MODEL else {}
DETECTION = config["detection"]
HOSTED = DETECTION["backend"] in API_BACKENDS
# What the boxes depend on: drawing and verification settings are not; of the backends'
# own sections only the one in use.
DETECT_SETTINGS = {
    k: v
    for k, v in DETECTION.items()
    if k != "visualize"
    and not k.startswith("verify")
    and (k not in ("opencv", "api", *API_BACKENDS) or k == DETECTION["backend"])
}
if HOSTED:
    DETECT_SETTINGS["api"] = DETECTION["api"]
# Hosted backends wait on the network: no GPU.
DETECT_GPUS = 0 if HOSTED else MODEL_GPUS
VERIFY_SETTINGS = {
    "classes": DETECTION["classes"],
    "model": FILTER["model"],
    **{
        k: DETECTION[k]
        for k in ("verify_template", "verify_threshold", "verify_padding")
    },
}
SEGMENT_SETTINGS = {**config["segment"], "classes": DETECTION["classes"]}
SEGMENT_SETTINGS.pop("enabled")
POINTS = DETECTION["backend"] == "moondream" and DETECTION["moondream"]["points"]
DATASET = config["dataset"]["enabled"]
# Equal shares written two ways (a split left out, or 0) are one setting: no rerun.
SPLITS = {**config["splits"], "ratios": full_ratios(config["splits"]["ratios"])}
# The splits with a share above 0: each gets its files, empty or not.
SPLIT_NAMES = active_splits(config["splits"]["ratios"])
SPLIT_FRAMES = "results/splits/frames.parquet"
# What places a video in a split; the clip export follows it (the caps are frames').
SPLIT_PLACEMENT = {k: SPLITS[k] for k in ("ratios", "seed")}
# The privacy classes the run's detections cover (boxes of any backend); the cascades find the rest.
PRIVACY_DETECTED = [c for c in DETECTION["classes"] if DETECTION["enabled"]]
EXPORT = config["export"]
SHOTS = config["shots"]["enabled"]
CLIPS = config["clips"]
CUT_SETTINGS = {k: CLIPS[k] for k in ("max_height", "crf")}
# The enabled clip stages in order, and the score column each puts in the clip export.
CLIP_STAGES = [s.name for s in enabled_stages(config) if s.level == "clip"]
CLIP_SCORES = {
    s.name: s.score for s in enabled_stages(config) if s.level == "clip" and s.score
}
# The clip score stages (flash, ocr, motion, aesthetic): one job per shard writes the
# tables of those enabled (of all four when none is: then no job asks for them).
SCORED = [s.name for s in enabled_stages(config) if s.job == "clip_scores"]
SCORE_OUTPUTS = {
    name: stage(name).table()
    for name in SCORED or [s.name for s in STAGES if s.job == "clip_scores"]
}
SCORE_SETTINGS = {name: config[name] for name in SCORED}
AESTHETIC = config["aesthetic"]
SCORE_MODELS = config["models"] if AESTHETIC["enabled"] else {}
SCORE_GPUS = MODEL_GPUS if AESTHETIC["enabled"] else 0
# TransNetV2 is the one shot detector with a model; the others decode on the CPU only.
SHOTS_GPUS = MODEL_GPUS if config["shots"]["backend"] == "transnetv2" else 0
CALIBRATION = config["calibration"]
CAPTIONS = config["captions"]
# clips is dropped (with a warning below) while the clip branch is off.
CAPTION_TARGETS = [
    t for t in CAPTIONS["targets"] if CAPTIONS["enabled"] and (t != "clips" or SHOTS)
]
CAPTION_API = CAPTIONS["enabled"] and CAPTIONS["backend"] == "api"
# What captions depend on and how they are sent; the key is never here, only key_env.
CAPTION_SETTINGS = {
    k: v for k, v in CAPTIONS.items() if k not in ("enabled", "targets")
}
CAPTION_MODELS = config["models"] if not CAPTION_API else {}
CAPTION_GPUS = 0 if CAPTION_API else MODEL_GPUS
# Requests in flight: each job asks for max_workers of the global api_requests (a
# profile caps the total; Snakemake lowers a larger request to the cap) and sends as
# many at once as it got.
CAPTION_API_REQUESTS = CAPTIONS["api"]["max_workers"] if CAPTION_API else 0
# Clips' frames are decoded under the clip-level limits; frames need none.
CAPTION_LIMITS = STAGE_LIMITS["clips"] if "clips" in CAPTION_TARGETS else {}
AUDIO = config["audio"]
AUDIO_SETTINGS = {k: v for k, v in AUDIO.items() if k != "enabled"}
AUDIO_SEGMENTS = "results/audio/segments/{shard}.parquet"
RUN_STARTED = time.time()  # a job log written since then belongs to this run
UPLOAD_TARGETS = config["upload"]
KEEP_VIDEOS = config["keep_videos"]
# What every export's items and manifest name: a hash of the config (the same config
# reruns no export; keys that change no result are left out), that config and its hub
# models (video_miner.provenance).
RUN_ID = run_id(config)
RUN_CONTEXT = {
    "run_id": RUN_ID,
    "config": result_config(config),
    "models": config_models(config),
}
# Takedowns: the split stage and the clip export drop these videos' items.
TAKEDOWN = config["takedown"]
# The user's own file: read in place (local()), never looked for on object storage.
TAKEDOWN_FILES = [local(config["takedown_file"])] if config["takedown_file"] else []
# The config keys that name the run's videos: the summary reads them for each video's origin.
INPUT_KEYS = (
    "urls",
    "url_files",
    "local_videos",
    "local_extensions",
    "local_images",
    "image_extensions",
    "video_sheet",
    "archives",
    "search",
)


wildcard_constraints:
    shard=SHARD_PATTERN,
    target="[A-Za-z0-9_-]+",
    query="[a-z0-9._-]+-[0-9a-f]{8}",


@functools.lru_cache(maxsize=8)
def _collect(searches=()):
    """The run's videos; ``searches``: (query, result file, content hash) of each search
    that ran (the hash makes a rerun of a search a new key). Without them, the results
    already on local disk are read (the warnings below, a failed run's summary)."""
    try:
        return collect_videos(config, searches={q: path for q, path, _ in searches})
    except ConfigError as exc:
        raise WorkflowError(f"Invalid configuration: {exc}")


def search_results():
    """Each search's result file. Searches are a checkpoint: until each has run, asking
    raises Snakemake's IncompleteCheckpointException, and Snakemake re-evaluates the
    asking input function once the search job is done. Opening the checkpoint's output
    through Snakemake retrieves it when the run's files are on object storage."""
    results = []
    for slug, query in SEARCH_QUERIES.items():
        output = checkpoints.search.get(query=slug).output[0]
        results.append((query, str(output), _content_hash(output)))
    return tuple(results)


def _content_hash(output):
    """The hash of a search's result file; every input function asks, so it is computed
    once per file version (size and time), not read again each time."""
    try:
        info = os.stat(str(output))
    except OSError:  # not here (on object storage, before it was retrieved)
        with output.open("rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    return _file_hash(str(output), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_hash(path, size, mtime_ns):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def videos():
    """Every video of the run (after the searches)."""
    return _collect(search_results())


@functools.lru_cache(maxsize=8)
def _shards(searches=()):
    return assign_shards(_collect(searches), config["shard_size"])


def shards():
    return _shards(search_results())


if CAPTIONS["enabled"] and "clips" in CAPTIONS["targets"] and not SHOTS:
    logger.warning(
        "captions.targets: clips is ignored while shots.enabled is false (there are no clips)"
    )

for rejected in _collect().rejected:
    logger.warning(f"skipping {rejected['origin']}: {rejected['reason']}")
if _collect().left_out:
    logger.info(
        f"max_videos: a pilot run of {len(_collect().videos)} videos "
        f"({_collect().left_out} more listed)"
    )


def write_failed_run_summary():
    """On error: the summary and status table from what the finished jobs wrote, with
    each failed job's videos failed at its stage and pointing at its log."""
    if STORAGE_ROOT:  # the tables and logs are on object storage, not here
        logger.error(
            "the run failed: see the failed jobs' logs; the summary of what finished "
            "is written by the next run that gets through"
        )
        return
    try:
        from video_miner.summary import summarize_failed_run  # pandas: only when needed

        collection = _collect()
        summary = summarize_failed_run(
            ENABLED,
            _shards(),
            collection.videos,
            collection.rejected,
            collection.duplicates,
            RUN_STARTED,
            [search_result_path(q) for q in SEARCH_QUERIES.values()],
        )
    except Exception as exc:  # the run's own error is what matters; never mask it
        logger.warning(f"could not write the summary of the failed run: {exc}")
        return
    for job in summary["failed_jobs"]:
        error = f"{job['error']}; " if job["error"] else ""
        logger.error(
            f"{job['stage']} job failed ({job['videos']} videos): {error}see {job['log']}"
        )
    logger.error(
        "summary of what finished: results/pipeline_result.json, results/status.tsv"
    )


def local_model(model):
    """A model folder is an input (a rule may make it, as the demo's); hub ids are not.
    Read in place, also when the run's files are on object storage."""
    return [local(model)] if is_local_model(model) else []


def all_shards(pattern):
    return expand(pattern, shard=shards())


def stage_tables(name):
    """Every table of a stage: one per shard, or the run's one table."""
    current = stage(name)
    return [current.table()] if not current.per_shard else all_shards(current.table())


def gate_tables():
    """The run-wide video table whose kept videos the frame stages after extraction and
    the exports keep to (video_dedup's), or none."""
    return [GATE.table()] if GATE else []


def frame_stage_input(name, wildcards):
    """A frame stage's inputs: the kept rows of the stage before it, the frame images and
    the videos it keeps to."""
    return {
        "frames": upstream(name, config).table(wildcards.shard),
        "images": stage("extract").files(wildcards.shard),
        "videos": gate_tables(),
    }


# --- input functions, one per rule ------------------------------------------------------


def get_download_input(wildcards):
    """Local videos, archives and their CSVs are inputs, so a rule may produce them (the
    demo's videos); so are the images of the shard's image folders."""
    collection = videos()
    members = shards()[wildcards.shard]
    local_videos = [
        collection.videos[v].location
        for v in members
        if collection.videos[v].kind == "local"
    ]
    # The user's own files: read in place (local()), never looked for on object storage.
    return [
        local(path)
        for path in local_videos
        + image_folder_files(wildcards.shard)
        + archive_inputs(collection, members)
    ]


def image_folder_files(shard):
    """The images of a shard's image folders: inputs, so an image added, changed or
    removed reruns the shard (a folder's own time does not see a changed image)."""
    sources = videos().videos
    return [
        os.path.join(sources[v].location, name)
        for v in shards()[shard]
        if sources[v].kind == IMAGES
        for name in folder_images(sources[v].location, config["image_extensions"])
    ]


def get_download_sources(wildcards):
    """What to fetch. Where each video was listed is left out on purpose: editing a list
    changes a shard's job only if it changes which videos the shard holds (and then the
    videos it had already fetched, here or in a nearby shard, are taken from the cache).
    """
    sources = videos().videos
    return [
        {"video_id": v, "kind": sources[v].kind, "location": sources[v].location}
        | ({"csv": sources[v].csv} if sources[v].kind == "archive" else {})
        for v in shards()[wildcards.shard]
    ]


def get_download_archives(wildcards):
    """An archive shard's settings (and the extensions that make a member a video); none
    for the other shards, so changing them reruns only the archives' jobs."""
    sources = videos().videos
    if not any(sources[v].kind == "archive" for v in shards()[wildcards.shard]):
        return {}
    return {**ARCHIVES, "extensions": config["local_extensions"]}


def get_download_slots(wildcards):
    """A download job holds one `downloads` per video it fetches at once (waiting on the
    network, not a core); Snakemake lowers a request above the global cap to the cap,
    and the job fetches as many at once as it was given."""
    return config["download"]["workers"]


def get_probe_input(wildcards):
    return {
        "videos": upstream("probe", config).table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
    }


def get_video_dedup_input(wildcards):
    return all_shards(upstream("video_dedup", config).table())


def get_shots_input(wildcards):
    return {
        "videos": upstream("shots", config).table(wildcards.shard),
        "downloads": stage("download").table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
    }


def get_extract_input(wildcards):
    inputs = {
        "videos": upstream("extract", config).table(wildcards.shard),
        "downloads": stage("download").table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
    }
    clips = cross_upstream("extract", "clip", config)
    if clips:
        inputs["clips"] = clips.table(wildcards.shard)
    return inputs


def get_filter_input(wildcards):
    return {
        **frame_stage_input("filter", wildcards),
        "model": local_model(FILTER["model"]),
    }


def get_embed_input(wildcards):
    inputs = frame_stage_input("embed", wildcards)
    if DEDUP["backend"] == "model":
        inputs["model"] = local_model(DEDUP_MODEL)
    return inputs


def get_clip_scores_input(wildcards):
    return {
        "clips": upstream(SCORED[0], config).table(wildcards.shard),
        "videos": upstream("shots", config).table(wildcards.shard),
        "downloads": stage("download").table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
        "keep": gate_tables(),
        **score_models(),
    }


def score_models():
    """The aesthetic model and head when they are local (the demo's is made by a rule)."""
    if not AESTHETIC["enabled"]:
        return {}
    return {
        "model": local_model(AESTHETIC["model"]),
        "head": [local(AESTHETIC["head"])] if AESTHETIC["head"] else [],
    }


def get_calibration_input(wildcards):
    """The clips to sample from (every shard's, before the score stages) and their videos."""
    return {
        "clips": all_shards(upstream(SCORED[0], config).table()),
        "videos": all_shards(upstream("shots", config).table()),
        "downloads": all_shards(stage("download").table()),
        "files": all_shards(stage("download").files()),
        "keep": gate_tables(),
        **score_models(),
    }


def get_clip_strip_input(wildcards):
    return {
        "clips": "results/clips/metadata.parquet",
        "downloads": all_shards(stage("download").table()),
        "files": all_shards(stage("download").files()),
    }


def get_cut_input(wildcards):
    return {
        "clips": final_stage("clip", config).table(wildcards.shard),
        "videos": upstream("shots", config).table(wildcards.shard),
        "downloads": stage("download").table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
        "keep": gate_tables(),
    }


def get_clips_input(wildcards):
    """Every clip stage's tables (each clip's reasons and scores), the cut files, the
    run-wide video table (copies of a video are dropped with its reason) and the split of
    each video (a clip goes where its video's frames go)."""
    inputs = {name: all_shards(stage(name).table()) for name in CLIP_STAGES}
    inputs["cut"] = all_shards("results/cut/{shard}.parquet") if CLIPS["cut"] else []
    inputs["cut_files"] = all_shards("results/cut/{shard}") if CLIPS["cut"] else []
    inputs["keep"] = gate_tables()
    inputs["splits"] = "results/splits/videos.parquet"
    inputs.update(clip_text_input())
    inputs["downloads"] = stage_tables("download")
    inputs["takedown"] = TAKEDOWN_FILES
    inputs["summary"] = "results/pipeline_result.json"
    return inputs


def get_dedup_input(wildcards):
    return {
        "tables": all_shards(stage("embed").table()),
        "embeddings": all_shards(stage("embed").files()),
    }


def get_dedup_shards(wildcards):
    return list(shards())


def get_detect_input(wildcards):
    inputs = frame_stage_input("detect", wildcards)
    if DETECTION["model"]:
        inputs["model"] = local_model(DETECTION["model"])
    return inputs


def get_verify_input(wildcards):
    return {
        **frame_stage_input("verify", wildcards),
        "model": local_model(FILTER["model"]),
    }


def get_segment_input(wildcards):
    return {
        **frame_stage_input("segment", wildcards),
        "model": local_model(SEGMENT_SETTINGS["model"]),
    }


def get_audio_input(wildcards):
    """The shard's kept videos (the probe's, without the copies video_dedup drops) and
    their files."""
    return {
        "videos": upstream("shots", config).table(wildcards.shard),
        "downloads": stage("download").table(wildcards.shard),
        "files": stage("download").files(wildcards.shard),
        "keep": gate_tables(),
        "model": local_model(AUDIO["model"]),
    }


def get_captions_input(wildcards):
    """The final frames and their images, and the kept clips with their videos' files,
    as the targets say."""
    shard = wildcards.shard
    inputs = {
        "frames": [],
        "images": [],
        "clips": [],
        "probes": [],
        "downloads": [],
        "files": [],
    }
    if "frames" in CAPTION_TARGETS:
        inputs["frames"] = final_stage("frame", config).table(shard)
        inputs["images"] = stage("extract").files(shard)
    if "clips" in CAPTION_TARGETS:
        inputs["clips"] = final_stage("clip", config).table(shard)
        inputs["probes"] = upstream("shots", config).table(shard)
        inputs["downloads"] = stage("download").table(shard)
        inputs["files"] = stage("download").files(shard)
    inputs["keep"] = gate_tables()
    if not CAPTION_API:
        inputs["model"] = local_model(CAPTIONS["florence2"]["model"])
    captions_plan()
    return inputs


@functools.lru_cache(maxsize=1)
def captions_plan():
    """Logged once while the DAG is built (so `snakemake -n` shows it): how many items
    the captions jobs would send, from the tables that exist (two small reads per shard).
    """
    from video_miner.captions import CaptionSettings, plan_to_send

    if STORAGE_ROOT:  # the tables are on object storage: counting would fetch them
        logger.info(
            "captions: not counted before the run (its tables are in remote storage)"
        )
        return None
    frames = final_stage("frame", config) if "frames" in CAPTION_TARGETS else None
    clips = final_stage("clip", config) if "clips" in CAPTION_TARGETS else None
    plan = plan_to_send(
        CaptionSettings.from_config(CAPTION_SETTINGS),
        {
            shard: (
                frames.table(shard) if frames else None,
                clips.table(shard) if clips else None,
                stage("captions").table(shard),
            )
            for shard in shards()
        },
        stage("captions").cache(),
    )
    logger.info(f"captions: {plan}")
    return plan


def get_splits_input(wildcards):
    """The final frames, the run-wide video table (the videos the exports keep to, and
    which are copies of which), the cross-video dedup table (videos that share frames),
    the takedowns, and the privacy tables (a frame privacy could not check is exported
    nowhere)."""
    return {
        "frames": stage_tables(final_stage("frame", config).name),
        "videos": gate_tables(),
        "links": stage_tables("dedup") if "dedup" in ENABLED else [],
        "downloads": stage_tables("download"),
        "takedown": TAKEDOWN_FILES,
        "privacy": privacy_tables(),
    }


def frame_text_input():
    """The captions and audio segments the frame exports carry, when those stages run."""
    return {
        "captions": stage_tables("captions") if "frames" in CAPTION_TARGETS else [],
        "segments": all_shards(AUDIO_SEGMENTS) if AUDIO["enabled"] else [],
    }


def clip_text_input():
    """The captions and audio segments the clip export carries, when those stages run."""
    return {
        "captions": stage_tables("captions") if "clips" in CAPTION_TARGETS else [],
        "segments": all_shards(AUDIO_SEGMENTS) if AUDIO["enabled"] else [],
    }


def get_coco_input(wildcards):
    return {
        "frames": SPLIT_FRAMES,
        "privacy": privacy_tables(),
        **frame_text_input(),
        **export_context_input(),
    }


def export_context_input():
    """What an export's provenance and manifest read: the download tables (each video's
    source, channel, licence) and the run summary (the counts per stage)."""
    return {
        "videos": stage_tables("download"),
        "summary": "results/pipeline_result.json",
    }


def get_visualize_input(wildcards):
    """The final boxes: those of the last stage that writes boxes (detect, verify, segment),
    and the split table (which videos are taken down)."""
    return {
        "frames": stage_tables(box_stage(config).name),
        "images": all_shards(stage("extract").files()),
        "privacy": privacy_tables(),
        "splits": SPLIT_FRAMES,
    }


def get_dataset_input(wildcards):
    return {
        "frames": SPLIT_FRAMES,
        "images": all_shards(stage("extract").files()),
        "privacy": privacy_tables(),
        **frame_text_input(),
        **export_context_input(),
    }


def get_webdataset_input(wildcards):
    return {
        "frames": SPLIT_FRAMES,
        "images": all_shards(stage("extract").files()),
        "privacy": privacy_tables(),
        **frame_text_input(),
        **export_context_input(),
    }


def get_yolo_input(wildcards):
    return {
        "frames": SPLIT_FRAMES,
        "images": all_shards(stage("extract").files()),
        "privacy": privacy_tables(),
        **export_context_input(),
    }


def privacy_tables():
    """The regions the frame exports blur, when privacy is on."""
    return stage_tables("privacy") if "privacy" in ENABLED else []


def get_privacy_input(wildcards):
    """The final frames (with their boxes when detection runs) and their images."""
    return {
        "frames": final_stage("frame", config).table(wildcards.shard),
        "images": stage("extract").files(wildcards.shard),
        "videos": gate_tables(),
    }


def get_label_studio_input(wildcards):
    return SPLIT_FRAMES


def get_points_input(wildcards):
    return {"frames": SPLIT_FRAMES, "privacy": privacy_tables()}


def get_summary_input(wildcards):
    """Every enabled stage's tables, the searches, and the lists that name the videos."""
    inputs = {name: stage_tables(name) for name in ENABLED}
    inputs["searches"] = [search_result_path(q) for q in SEARCH_QUERIES.values()]
    inputs["lists"] = [local(path) for path in input_files(config)]
    inputs["splits"] = SPLIT_FRAMES
    return inputs


def get_summary_inputs_config(wildcards):
    return {key: config[key] for key in INPUT_KEYS}


def get_summary_rejected(wildcards):
    return videos().rejected


def get_summary_duplicates(wildcards):
    return videos().duplicates


def get_upload_input(wildcards):
    inputs = {"summary": "results/pipeline_result.json", "status": "results/status.tsv"}
    if DATASET:
        inputs["dataset"] = "results/dataset"
    if DETECTION["enabled"]:
        inputs["annotations"] = "results/detections/annotations.json"
        inputs["split_annotations"] = split_annotations()
        inputs["annotations_manifest"] = "results/detections/annotations.manifest.json"
        if POINTS:
            inputs["points"] = ["results/detections/points.json", *split_points()]
    if SHOTS:
        inputs["clips"] = multiext("results/clips/metadata", ".jsonl", ".parquet")
        inputs["clip_files"] = "results/clips/files"
        inputs["clips_manifest"] = "results/clips/manifest.json"
        if CLIPS["webdataset"]:
            inputs["clips_webdataset"] = "results/export/clips"
    if EXPORT["webdataset"]:
        inputs["webdataset"] = "results/export/webdataset"
    return inputs


def get_upload_target(wildcards):
    return {"name": wildcards.target, "value": UPLOAD_TARGETS[wildcards.target]}


def get_report_plots_input(wildcards):
    inputs = {"summary": "results/pipeline_result.json"}
    if "filter" in ENABLED:
        inputs["filtered"] = stage_tables("filter")
    if "detect" in ENABLED:
        inputs["annotations"] = "results/detections/annotations.json"
    return inputs


def get_search_query(wildcards):
    return SEARCH_QUERIES[wildcards.query]


def split_points():
    """The COCO keypoints file of each split with a share above 0."""
    return expand("results/detections/points_{split}.json", split=SPLIT_NAMES)


def split_annotations():
    """The COCO file of each split with a share above 0."""
    return expand("results/detections/annotations_{split}.json", split=SPLIT_NAMES)


def get_all_input(wildcards):
    """What a run makes: the summary and status table, plus each enabled export."""
    outputs = [
        "results/run_config.yaml",
        "results/pipeline_result.json",
        "results/status.tsv",
        "results/report/funnel.png",
    ]
    if VIDEO_DEDUP["enabled"]:
        outputs.append("results/metadata/duplicates.json")
    outputs += ["results/splits/videos.parquet", SPLIT_FRAMES]
    if DETECTION["enabled"]:
        outputs.append("results/detections/annotations.json")
        outputs += split_annotations()
        if DETECTION["visualize"]["enabled"]:
            outputs.append("results/detections/visualizations")
        if EXPORT["yolo"]:
            outputs.append("results/export/yolo")
        if EXPORT["label_studio"]:
            outputs.append("results/export/label_studio/tasks.json")
        if POINTS:
            outputs.append("results/detections/points.json")
    if DATASET:
        outputs.append("results/dataset")
    if EXPORT["webdataset"]:
        outputs.append("results/export/webdataset")
    if SHOTS:
        outputs.append("results/clips/metadata.jsonl")
        if CLIPS["webdataset"]:
            outputs.append("results/export/clips")
        if SCORED:
            outputs.append("results/report/clip_strip.jpg")
    if CALIBRATION["enabled"]:
        outputs.append("results/calibration/quantiles.json")
    outputs += expand("results/upload/{target}.done", target=UPLOAD_TARGETS)
    return outputs


def video_files_output(path):
    """The shard's videos are temporary when keep_videos is false: Snakemake deletes them
    once extraction is done, and fetches them again if extraction must rerun."""
    return directory(path) if KEEP_VIDEOS else temp(directory(path))
