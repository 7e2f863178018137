"""The run's summary (``pipeline_result.json``) and per-video status table.

Both are derived from the per-video result files on every run, so they cannot go stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from video_miner.tables import read_metadata
from video_miner.fsutil import atomic_path, write_json_atomic

STATUS_COLUMNS = [
    "video_id", "status", "failed_stage", "reason", "source", "location", "origin", "title", "channel",
    "duration_s", "width", "height", "fps", "frames_in_video", "frames_extracted", "decode_errors",
    "frames_passed", "frames_unique", "frames_with_detections",
]


def video_status(record: dict, extraction: dict, origin: str | None = None) -> dict:
    """One row of the status table from a video's download record and extraction metadata."""
    status, stage, reason = "extracted", None, None
    if record.get("status") != "ok":
        status, stage, reason = "failed", "download", record.get("reason")
    elif extraction.get("status") != "ok":
        status, stage, reason = "failed", "extract", extraction.get("reason")
    return {
        "video_id": record["video_id"],
        "status": status,
        "failed_stage": stage,
        "reason": reason,
        "source": record.get("source"),
        "location": record.get("url") or record.get("path"),
        "origin": origin,
        "title": record.get("title"),
        "channel": record.get("channel"),
        "duration_s": record.get("duration"),
        "width": record.get("width"),
        "height": record.get("height"),
        "fps": record.get("fps"),
        "frames_in_video": extraction.get("frames_in_video", 0),
        "frames_extracted": extraction.get("frames_extracted", 0),
        "decode_errors": extraction.get("decode_errors", 0),
    }


def _add_stage_counts(table: pd.DataFrame, passed: pd.Series | None, unique: pd.Series | None,
                      detected: pd.Series | None) -> None:
    """Per-video frames after the filter, after dedup and with detections; a video that
    reached a stage gets that stage as its status."""
    for column, counts, stage in (("frames_passed", passed, "filtered"), ("frames_unique", unique, "deduplicated"),
                                  ("frames_with_detections", detected, "detected")):
        if counts is None:
            table[column] = pd.NA
            continue
        table[column] = table["video_id"].map(counts).fillna(0).astype("int64")
        table.loc[table["status"] != "failed", "status"] = stage


def build_summary(records: list[dict], extractions: list[dict], rejected: list[dict], duplicates: int,
                  passed: pd.Series | None = None, unique: pd.Series | None = None,
                  stage_seconds: dict | None = None, origins: dict | None = None,
                  detected: pd.Series | None = None, detections_per_class: dict | None = None,
                  ) -> tuple[dict, pd.DataFrame]:
    rows = [video_status(r, e, (origins or {}).get(r["video_id"])) for r, e in zip(records, extractions, strict=True)]
    table = pd.DataFrame(rows, columns=STATUS_COLUMNS[:-3])
    _add_stage_counts(table, passed, unique, detected)
    failed = table[table["status"] == "failed"]
    transient = {r["video_id"] for r in records if r.get("transient")}
    summary = {
        "videos": {
            "total": len(table),
            "ok": int((table["status"] != "failed").sum()),
            "failed": len(failed),
            "duplicates_in_input": duplicates,
            "rejected_inputs": len(rejected),
        },
        "failed_videos": [
            {
                "video_id": row.video_id,
                "location": row.location,
                "stage": row.failed_stage,
                "reason": row.reason,
                "retryable": row.video_id in transient,
            }
            for row in failed.itertuples()
        ],
        "rejected_inputs": rejected,
        "frames": {
            "in_videos": int(table["frames_in_video"].sum()),
            "extracted": int(table["frames_extracted"].sum()),
            "decode_errors": int(table["decode_errors"].sum()),
            "passed_filter": None if passed is None else int(passed.sum()),
            "unique": None if unique is None else int(unique.sum()),
            "with_detections": None if detected is None else int(detected.sum()),
        },
        "detections_per_class": detections_per_class,
        "stage_seconds": {
            "download": round(sum(r.get("download_seconds") or 0 for r in records), 3),
            "extract": round(sum(e.get("seconds") or 0 for e in extractions), 3),
            **(stage_seconds or {}),
        },
    }
    summary["stage_seconds"]["total"] = round(sum(summary["stage_seconds"].values()), 3)
    return summary, table


def summarize_files(record_paths: list[str], manifest_paths: list[str], rejected: list[dict], duplicates: int,
                    summary_path: str | os.PathLike, status_path: str | os.PathLike,
                    filter_paths: list[str] | None = None, unique_path: str | None = None,
                    origins: dict | None = None, detection_paths: list[str] | None = None,
                    search_paths: list[str] | None = None) -> dict:
    records = [json.loads(Path(p).read_text()) for p in record_paths]
    extractions = [read_metadata(p) for p in manifest_paths]
    passed = unique = None
    stage_seconds = {}
    if filter_paths is not None:
        tables = [pd.read_parquet(p, columns=["video_id", "passed"]) for p in filter_paths]
        frames = pd.concat(tables) if tables else pd.DataFrame({"video_id": [], "passed": []})
        passed = frames.groupby("video_id")["passed"].sum()
        stage_seconds["filter"] = round(sum(read_metadata(p).get("seconds", 0) for p in filter_paths), 3)
    if unique_path is not None:
        frames = pd.read_parquet(unique_path, columns=["video_id", "kept"])
        unique = frames.groupby("video_id")["kept"].sum()
    detected = per_class = None
    if detection_paths is not None:
        detected, per_class = _detection_counts(detection_paths)
        stage_seconds["detect"] = round(sum(read_metadata(p).get("seconds", 0) for p in detection_paths), 3)
    summary, table = build_summary(records, extractions, rejected, duplicates, passed, unique, stage_seconds, origins,
                                   detected, per_class)
    summary["searches"] = [_search_record(p) for p in search_paths or []]
    with atomic_path(status_path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json_atomic(summary_path, summary)
    return summary


def _detection_counts(paths: list[str]) -> tuple[pd.Series, dict]:
    """Frames with at least one box per video, and boxes per class over the run."""
    per_class: dict[str, int] = {}
    frames = []
    for path in paths:
        per_class_shard = read_metadata(path).get("detections", {})
        for name, count in per_class_shard.items():
            per_class[name] = per_class.get(name, 0) + count
        table = pd.read_parquet(path, columns=["video_id", "category"])
        frames.append(table.assign(found=table["category"].map(len) > 0)[["video_id", "found"]])
    found = pd.concat(frames) if frames else pd.DataFrame({"video_id": [], "found": []})
    return found.groupby("video_id")["found"].sum(), per_class


def _search_record(path: str) -> dict:
    result = json.loads(Path(path).read_text())
    return {"query": result["query"], "status": result["status"], "reason": result.get("reason"),
            "videos": len(result["entries"]), "outside_duration_range": result.get("filtered_out", 0)}
