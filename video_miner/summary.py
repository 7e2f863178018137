"""The run's summary (``pipeline_result.json``) and per-video status table.

Both are derived from the per-video result files on every run, so they cannot go stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from video_miner.extract import read_manifest_metadata
from video_miner.fsutil import atomic_path, write_json_atomic

STATUS_COLUMNS = [
    "video_id", "status", "failed_stage", "reason", "source", "location", "origin", "title", "channel",
    "duration_s", "width", "height", "fps", "frames_in_video", "frames_extracted", "decode_errors",
]


def video_status(record: dict, extraction: dict) -> dict:
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
        "origin": record.get("origin"),
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


def build_summary(records: list[dict], extractions: list[dict], rejected: list[dict], duplicates: int) -> tuple[dict, pd.DataFrame]:
    rows = [video_status(r, e) for r, e in zip(records, extractions, strict=True)]
    table = pd.DataFrame(rows, columns=STATUS_COLUMNS)
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
        },
        "stage_seconds": {
            "download": round(sum(r.get("download_seconds") or 0 for r in records), 3),
            "extract": round(sum(e.get("seconds") or 0 for e in extractions), 3),
        },
    }
    summary["stage_seconds"]["total"] = round(sum(summary["stage_seconds"].values()), 3)
    return summary, table


def summarize_files(record_paths: list[str], manifest_paths: list[str], rejected: list[dict], duplicates: int,
                    summary_path: str | os.PathLike, status_path: str | os.PathLike) -> dict:
    records = [json.loads(Path(p).read_text()) for p in record_paths]
    extractions = [read_manifest_metadata(p) for p in manifest_paths]
    summary, table = build_summary(records, extractions, rejected, duplicates)
    with atomic_path(status_path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json_atomic(summary_path, summary)
    return summary
