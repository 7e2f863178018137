"""The run's summary (``pipeline_result.json``) and its video table (``results/metadata/
videos.parquet``, ``.jsonl``, ``.csv``: one row per video, what the site said, what the
probe found, its status, duplicate and per-stage counts), derived from the stage tables
on every run (so they cannot go stale), driven by the stage registry. ``status.tsv`` is
a rendering of the video table: some of its columns."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from video_miner.ids import archive_video_id
from video_miner.fsutil import atomic_path, write_json_atomic, write_tsv
from video_miner.logs import job_error
from video_miner.probe import PROBE_FIELDS
from video_miner.stages import BOX_STAGES, RESULTS_FORMAT_VERSION, STAGES, TAKEN_DOWN, Stage, stage
from video_miner.tables import read_metadata, video_outcomes
from video_miner.tables.clip import CLIP
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO, rejected_videos

FRAME_STAGES = [s for s in STAGES if s.level == "frame" and not s.annotates]
CLIP_STAGES = [s for s in STAGES if s.level == "clip" and not s.annotates]
# Per-video counts of each clip and frame stage: clips_<count>, frames_<count>.
COUNT_COLUMNS = [*(f"clips_{s.count}" for s in CLIP_STAGES), *(f"frames_{s.count}" for s in FRAME_STAGES)]
STATUS_COLUMNS = [
    "video_id", "status", "failed_stage", "reason", "source", "location", "origin", "title", "channel",
    "duration_s", "width", "height", "fps", "frames_in_video", "decode_errors", *COUNT_COLUMNS,
]
# Written as integers even where failed videos leave them empty.
INTEGER_COLUMNS = ["width", "height", "frames_in_video", "decode_errors", *COUNT_COLUMNS]
# What each video table column comes from: the download's, the probe's, video_dedup's.
_DOWNLOAD_COLUMNS = ["source", "location", "title", "channel", "upload_date", "filesize"]
# A tar archive's member: the archive, and the clip's source video and span (from its CSV).
_ARCHIVE_COLUMNS = ["archive", "source_video_id", "source_start_s", "source_end_s"]
_PROBE_COLUMNS = [f.name for f in PROBE_FIELDS if f.name != "phash"]
_DEDUP_COLUMNS = {"duplicate_of": "duplicate_of", "distance": "duplicate_distance"}
VIDEO_TABLE_COLUMNS = [
    "video_id", "status", "failed_stage", "reason", "source", "location", "origin", "title", "channel",
    "upload_date", "filesize", *_ARCHIVE_COLUMNS, *_PROBE_COLUMNS, *_DEDUP_COLUMNS.values(), "frames_in_video", "decode_errors",
    *COUNT_COLUMNS,
]
VIDEO_TABLE_INTEGERS = [
    "filesize", "coded_width", "coded_height", "width", "height", "rotation", "frame_count", "bit_rate",
    "audio_sample_rate", "audio_channels", "frames_in_video", "decode_errors", *COUNT_COLUMNS]


def stage_failures(current: Stage, paths: Sequence[str]) -> dict[str, str]:
    """Videos that failed in a stage, with the reason: rows not kept at the video level,
    per-video outcomes that are not ok at the other levels."""
    if current.level == "video":
        rows = VIDEO.read(paths, columns=["reason"])
        rows = rows[~rows["kept"].astype(bool)]
        rejected = rejected_videos(paths)
        return {v: r for v, r in zip(rows["video_id"], rows["reason"]) if v not in rejected}
    failed = {}
    for path in paths:
        for video_id, outcome in video_outcomes(path).items():
            if not outcome.get("ok", True):
                failed[video_id] = outcome.get("reason") or f"{current.name} failed"
    return failed


def _stage_seconds(paths: Sequence[str]) -> float:
    """The wall time of a stage's jobs, added up (each job records its own)."""
    return float(sum(read_metadata(p).get("seconds") or 0 for p in paths))


def split_finished(stage_names: Sequence[str], shards: dict[str, list[str]], since: float,
                   root: str | os.PathLike = ".") -> tuple[dict[str, list[str]], list[dict]]:
    """Each stage's tables that exist, and the jobs without one: stage, shard, log, the
    videos they held, and whether the job ``failed`` (its log was written since the run
    started at ``since``; Snakemake removes a failed job's outputs) or never ran (its
    inputs failed, or Snakemake stopped first)."""
    tables: dict[str, list[str]] = {}
    unfinished = []
    for name in stage_names:
        current = stage(name)
        groups = shards.items() if current.per_shard else [(None, [v for ids in shards.values() for v in ids])]
        tables[name] = []
        for shard, video_ids in groups:
            path = current.table(shard)
            if Path(root, path).is_file():
                tables[name].append(path)
                continue
            log = Path(root, current.log(shard))
            failed = log.is_file() and log.stat().st_mtime >= since
            unfinished.append({"stage": name, "shard": shard, "log": current.log(shard), "failed": failed,
                               "error": job_error(log) if failed else None, "video_ids": video_ids})
    return tables, unfinished


def build_summary(tables: dict[str, list[str]], rejected: list[dict], duplicates: int,
                  origins: dict[str, str] | None = None, unfinished: Sequence[dict] = (),
                  locations: dict[str, tuple[str, str]] | None = None,
                  removed: dict[str, str] | None = None) -> tuple[dict, pd.DataFrame]:
    """``tables``: each enabled stage's tables by stage name, in registry order.
    ``unfinished``: jobs that did not finish (:func:`split_finished`); their videos are
    failed at that stage, with the job's log as the reason. ``locations``: each video's
    (source, location), for the videos whose download job did not finish. ``removed``:
    the videos the takedown list took out of the exports, with the entry each matched."""
    enabled = [s for s in STAGES if s.name in tables]
    downloads = VIDEO.read(tables["download"])
    not_downloaded = [v for job in unfinished if job["stage"] == "download" for v in job["video_ids"]]
    if not_downloaded:
        where = [(locations or {}).get(v, (None, None)) for v in not_downloaded]
        downloads = pd.concat([downloads, pd.DataFrame(where, columns=["source", "location"]).assign(
            video_id=not_downloaded)], ignore_index=True)
    status = pd.DataFrame({"video_id": downloads["video_id"], "status": "complete", "failed_stage": None,
                           "reason": None})
    for column in _DOWNLOAD_COLUMNS + _ARCHIVE_COLUMNS:
        status[column] = downloads[column] if column in downloads else None
    status = _joined(status, tables.get("probe", []), {c: c for c in _PROBE_COLUMNS})
    status = _joined(status, tables.get("video_dedup", []), _DEDUP_COLUMNS)
    status["origin"] = status["video_id"].map(origins or {})
    # An archive's members were listed where the archive was.
    members = status["origin"].isna() & status["archive"].notna()
    if members.any():
        status["origin"] = status["origin"].astype(object)
        status.loc[members, "origin"] = status.loc[members, "archive"].map(
            lambda location: (origins or {}).get(archive_video_id(location)))
    transient = set(downloads.loc[downloads["transient"].fillna(False).astype(bool), "video_id"]) \
        if "transient" in downloads else set()  # no shards at all: a run with no videos
    outcomes = {v: o for p in tables.get("extract", []) for v, o in video_outcomes(p).items()}
    status["frames_in_video"] = status["video_id"].map(lambda v: outcomes.get(v, {}).get("frames_in_video", 0))
    status["decode_errors"] = status["video_id"].map(lambda v: outcomes.get(v, {}).get("decode_errors", 0))
    frames = {"in_videos": int(status["frames_in_video"].sum()), "decode_errors": int(status["decode_errors"].sum())}
    clips: dict = {}
    annotations: dict = {}
    funnel, seconds = [], {}
    status = status.set_index("video_id", drop=False)
    for current in enabled:
        paths = tables[current.name]
        failures = stage_failures(current, paths)
        reached = enabled[enabled.index(current) - 1].status if enabled.index(current) else "pending"
        for job in unfinished:
            if job["stage"] == current.name and job["failed"]:
                error = f": {job['error']};" if job["error"] else ";"
                failures.update(dict.fromkeys(job["video_ids"], f"{current.name} job failed{error} see {job['log']}"))
            elif job["stage"] == current.name:  # never ran: the video got as far as the stage before
                waiting = status.loc[status.index.intersection(job["video_ids"]), "status"] == "complete"
                status.loc[waiting[waiting].index, "status"] = reached
        for video_id, reason in failures.items():
            if video_id in status.index and status.at[video_id, "status"] not in ("failed", "rejected"):
                status.loc[video_id, ["status", "failed_stage", "reason"]] = ["failed", current.name, reason]
        if current.level == "video":
            for video_id, reason in rejected_videos(paths).items():
                if video_id in status.index and status.at[video_id, "status"] not in ("failed", "rejected"):
                    status.loc[video_id, ["status", "failed_stage", "reason"]] = ["rejected", current.name, reason]
        seconds[current.name] = round(_stage_seconds(paths), 3)
        if current.annotates:
            # Its own section (captions: made, failed by reason, tokens; audio: videos,
            # segments); the funnel counts what it annotated.
            annotations[current.name] = annotation_totals(current.name, paths)
            count = annotations[current.name].get(current.counted, 0) if current.level != "video" else \
                int(VIDEO.read(paths, columns=[])["kept"].astype(bool).sum())
        elif current.level == "video":
            count = int(VIDEO.read(paths, columns=[])["kept"].astype(bool).sum())
        else:
            level, counts = (CLIP, clips) if current.level == "clip" else (FRAME, frames)
            rows = level.read(paths, columns=[current.counted])
            if current.level == "clip" and "total" not in clips:
                clips["total"] = len(rows)  # the first clip stage's rows: every shot or window
            per_video = rows.groupby("video_id")[current.counted].sum() if len(rows) else pd.Series(dtype="int64")
            status[f"{level.name}s_{current.count}"] = status["video_id"].map(per_video).fillna(0).astype("int64")
            count = counts[current.count] = int(per_video.sum())
        funnel.append({"stage": current.name, "level": current.level, "label": current.label, "count": count})
    for current in FRAME_STAGES + CLIP_STAGES:
        level, counts = ("clips", clips) if current.level == "clip" else ("frames", frames)
        counts.setdefault(current.count, None)  # stages that were off
        column = f"{level}_{current.count}"
        if column not in status:
            status[column] = pd.NA
    status = mark_taken_down(status.reset_index(drop=True)[VIDEO_TABLE_COLUMNS], removed or {})
    failed = status[status["status"] == "failed"]
    decided = status[status["status"] == "rejected"]
    boxes = [name for name in BOX_STAGES if name in tables]
    summary = {
        "format_version": RESULTS_FORMAT_VERSION,
        "stages": [s.name for s in enabled],
        # False when jobs failed: the counts are what the finished jobs made.
        "complete": not unfinished,
        "failed_jobs": [{"stage": j["stage"], "shard": j["shard"], "log": j["log"], "error": j.get("error"),
                         "videos": len(j["video_ids"])} for j in unfinished if j["failed"]],
        "jobs_not_run": sum(not j["failed"] for j in unfinished),
        "videos": {
            "total": len(status),
            "ok": len(status) - len(failed) - len(decided),
            "failed": len(failed),
            "rejected": len(decided),
            "duplicates_in_input": duplicates,
            "rejected_inputs": len(rejected),
        },
        "failed_videos": [
            {"video_id": row.video_id, "location": row.location, "stage": row.failed_stage, "reason": row.reason,
             "retryable": row.video_id in transient}
            for row in failed.itertuples()
        ],
        "rejected_videos": [{"video_id": row.video_id, "location": row.location, "stage": row.failed_stage,
                             "reason": row.reason} for row in decided.itertuples()],
        "rejected_inputs": rejected,
        "clips": {"total": clips.get("total"), **{k: v for k, v in clips.items() if k != "total"}},
        "frames": frames,
        "funnel": funnel,
        # The final boxes: those of the last stage that writes boxes (verify drops some).
        "detections_per_class": _detections_per_class(tables[boxes[-1]]) if boxes else None,
        "boxes_dropped_by_verify": _detections_per_class(tables["verify"], "dropped") if "verify" in tables else None,
        # Each annotating stage's section (audio: videos, segments; captions: made, failed by
        # reason, tokens; privacy: frames checked, with regions, regions, unreadable); null when off.
        **{s.name: annotations.get(s.name) for s in STAGES if s.annotates},
        "stage_seconds": {**seconds, "total": round(sum(seconds.values()), 3)},
    }
    return summary, status


def annotation_totals(name: str, paths: Sequence[str]) -> dict:
    """An annotating stage's job records (``<name>`` in each table's metadata) added up:
    numbers, and dicts of numbers (failures by reason, tokens) key by key."""
    total: dict = {}
    for path in paths:
        for key, value in read_metadata(path).get(name, {}).items():
            if isinstance(value, dict):
                part = total.setdefault(key, {})
                for k, v in value.items():
                    part[k] = part.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def _joined(status: pd.DataFrame, paths: Sequence[str], columns: dict[str, str]) -> pd.DataFrame:
    """``status`` with ``columns`` of a video-level stage's tables (as renamed), empty
    for videos it has no row for."""
    rows = VIDEO.read(paths, columns=list(columns)) if paths else pd.DataFrame(columns=["video_id", *columns])
    rows = rows.reindex(columns=["video_id", *columns]).rename(columns=columns)
    return status.merge(rows, on="video_id", how="left", validate="1:1")


def mark_taken_down(status: pd.DataFrame, removed: dict[str, str]) -> pd.DataFrame:
    """Status ``taken down`` and the takedown entry as the reason for each video the
    takedown removed from the exports. A failed or rejected video keeps its status: it
    had nothing in the exports, and its reason says why (``videos.ok`` counts the videos
    that were processed, taken down or not)."""
    marked = status["video_id"].isin(list(removed)) & ~status["status"].isin(["failed", "rejected"])
    if marked.any():
        status = status.copy()
        status.loc[marked, "status"] = TAKEN_DOWN
        status.loc[marked, "reason"] = status.loc[marked, "video_id"].map(removed)
    return status


def takedown_summary(record: dict | None, tables: dict[str, list[str]]) -> dict:
    """What the takedown list removed from the exports: the videos (id and reason, as the
    split stage matched them), their frames, and their clips (those the last clip stage
    kept, which the clip export leaves out)."""
    videos = (record or {}).get("videos") or {}
    clips = 0
    finals = [s for s in CLIP_STAGES if s.name in tables]
    if videos and finals:
        rows = CLIP.read_kept(tables[finals[-1].name], columns=[])
        clips = int(rows["video_id"].isin(videos).sum())
    return {"videos": [{"video_id": v, "reason": r} for v, r in videos.items()],
            "frames": int((record or {}).get("frames") or 0), "clips": clips}


def write_video_table(folder: str | os.PathLike, table: pd.DataFrame) -> None:
    """``videos.parquet``, ``videos.jsonl`` and ``videos.csv`` in ``folder``: the same
    rows, counts and sizes as integers (empty where unknown)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = table.copy()
    for column in VIDEO_TABLE_INTEGERS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    for column in ("is_vfr", "has_audio"):
        table[column] = table[column].astype("boolean")
    for column in ("fps", "fps_nominal", "duration_s", "duplicate_distance", "source_start_s", "source_end_s"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    text = [c for c in table.columns if c not in (*VIDEO_TABLE_INTEGERS, "is_vfr", "has_audio", "fps", "fps_nominal",
                                                  "duration_s", "duplicate_distance", "source_start_s",
                                                  "source_end_s")]
    table[text] = table[text].astype("string")
    with atomic_path(folder / "videos.parquet", suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(folder / "videos.jsonl", suffix=".jsonl") as tmp:
        table.to_json(tmp, orient="records", lines=True, force_ascii=False)
    with atomic_path(folder / "videos.csv", suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


def _detections_per_class(paths: Sequence[str], key: str = "detections") -> dict[str, int]:
    per_class: dict[str, int] = {}
    for path in paths:
        for name, count in read_metadata(path).get(key, {}).items():
            per_class[name] = per_class.get(name, 0) + count
    return per_class


def summarize_files(tables: dict[str, list[str]], rejected: list[dict], duplicates: int,
                    summary_path: str | os.PathLike, status_path: str | os.PathLike,
                    origins: dict | None = None, search_paths: Sequence[str] = (),
                    unfinished: Sequence[dict] = (), locations: dict | None = None,
                    metadata_dir: str | os.PathLike | None = None,
                    splits_path: str | os.PathLike | None = None) -> dict:
    """The summary, and the video table (into ``metadata_dir``) with ``status.tsv``
    rendered from it. ``splits_path``: the split table, whose report (targets, achieved
    shares, notes) becomes the summary's ``splits``."""
    from video_miner.splits import read_report, read_takedown

    record = read_takedown(splits_path) if splits_path else None
    summary, table = build_summary(tables, rejected, duplicates, origins, unfinished, locations,
                                   (record or {}).get("videos"))
    summary["searches"] = [_search_record(p) for p in search_paths]
    summary["splits"] = read_report(splits_path) if splits_path else None
    summary["takedown"] = takedown_summary(record, tables)
    if metadata_dir is not None:
        write_video_table(metadata_dir, table)
    write_tsv(status_path, table[STATUS_COLUMNS], integers=INTEGER_COLUMNS)
    write_json_atomic(summary_path, summary)
    return summary


def summarize_failed_run(stage_names: Sequence[str], shards: dict[str, list[str]], sources: dict,
                         rejected: list[dict], duplicates: int, since: float, search_paths: Sequence[str] = (),
                         root: str | os.PathLike = ".") -> dict:
    """The summary and status table of a run in which jobs failed, from the tables its
    finished jobs wrote (``sources``: video id -> :class:`~video_miner.sources.VideoSource`).
    Snakemake's ``onerror`` calls it, so every run ends with its summary."""
    root = Path(root)
    shards = {shard: archive_members(shard, ids, sources, root) for shard, ids in shards.items()}
    tables, unfinished = split_finished(stage_names, shards, since, root)
    tables = {name: [(root / p).as_posix() for p in paths] for name, paths in tables.items()}
    # The splits' last finished table (written atomically), as for every other stage; a
    # run that failed after the summary job must not lose them from its summary.
    splits = root / "results" / "splits" / "frames.parquet"
    return summarize_files(
        tables, rejected, duplicates, root / "results" / "pipeline_result.json", root / "results" / "status.tsv",
        metadata_dir=root / "results" / "metadata", origins={v: s.origin for v, s in sources.items()},
        search_paths=[p for p in (root / q for q in search_paths) if p.is_file()],
        unfinished=unfinished, locations={v: (s.kind, s.location) for v, s in sources.items()},
        splits_path=splits if splits.is_file() else None)


def archive_members(shard: str, video_ids: list[str], sources: dict, root: str | os.PathLike = ".") -> list[str]:
    """The videos of a shard: an archive's shard holds the members its download table
    lists (known once it ran), every other shard the videos it was given."""
    table = Path(root, stage("download").table(shard))
    if not any(sources[v].kind == "archive" for v in video_ids if v in sources) or not table.is_file():
        return video_ids
    return VIDEO.read([table], columns=[])["video_id"].tolist()


def _search_record(path: str) -> dict:
    result = json.loads(Path(path).read_text())
    return {"query": result["query"], "status": result["status"], "reason": result.get("reason"),
            "videos": len(result["entries"]), "outside_duration_range": result.get("filtered_out", 0)}

