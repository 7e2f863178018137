"""Where every video stands, derived from the result files (nothing is stored, so it
cannot go stale): pending, downloaded, extracted, filtered, deduplicated, detected,
complete, or failed with the stage and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from video_miner.sources import assign_shards, collect_videos
from video_miner.tables import read_metadata

STATUSES = ["pending", "downloaded", "extracted", "filtered", "deduplicated", "detected", "complete", "failed"]
REGISTRY_COLUMNS = ["video_id", "status", "failed_stage", "reason", "kind", "location", "origin", "title"]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def video_statuses(config: dict, root: str | Path = ".") -> pd.DataFrame:
    """One row per video of the configured run, in listing order."""
    root = Path(root)
    collection = collect_videos(config, str(root))
    shard_of = {v: s for s, members in assign_shards(collection, config["shard_size"]).items() for v in members}
    results = root / "results"
    unique_time = _mtime(results / "dedup" / "unique_frames.parquet")

    def deduplicated(shard: str) -> bool:  # its shard embedded, and the cross-video step ran after
        shard_time = _mtime(results / "dedup" / shard)
        return bool(shard_time and unique_time and unique_time >= shard_time)

    stages = []  # the enabled per-shard stages in order, each with its test for "done"
    if config["filter"]["enabled"]:
        stages.append(("filtered", lambda shard: (results / "filter" / f"{shard}.parquet").exists()))
    if config["dedup"]["enabled"]:
        stages.append(("deduplicated", deduplicated))
    if config["detection"]["enabled"]:
        stages.append(("detected", lambda shard: (results / "detections" / "shards" / f"{shard}.parquet").exists()))
    summary_time = _mtime(root / "results" / "pipeline_result.json")
    rows = []
    for video_id, source in collection.videos.items():
        row = {"video_id": video_id, "status": "pending", "failed_stage": None, "reason": None, "kind": source.kind,
               "location": source.location, "origin": source.origin, "title": None}
        record_path = root / "results" / "videos" / f"{video_id}.info.json"
        manifest = root / "results" / "frames" / f"{video_id}.parquet"
        if record_path.exists():
            record = json.loads(record_path.read_text())
            row["title"] = record.get("title")
            if record.get("status") != "ok":
                row.update(status="failed", failed_stage="download", reason=record.get("reason"))
            elif not manifest.exists():
                row["status"] = "downloaded"
            else:
                extraction = read_metadata(manifest)
                if extraction.get("status") != "ok":
                    row.update(status="failed", failed_stage="extract", reason=extraction.get("reason"))
                else:
                    row["status"] = _stage_reached(shard_of[video_id], stages)
                    done_at = _mtime(manifest)
                    if row["status"] == (stages[-1][0] if stages else "extracted") and summary_time \
                            and done_at and summary_time >= done_at:
                        row["status"] = "complete"
        rows.append(row)
    return pd.DataFrame(rows, columns=REGISTRY_COLUMNS)


def _stage_reached(shard: str, stages) -> str:
    reached = "extracted"
    for name, done in stages:
        if not done(shard):
            break
        reached = name
    return reached


def status_counts(table: pd.DataFrame) -> dict:
    """Videos per status, and how many reached each stage (a video at a later stage
    counts for every earlier one; failed ones count for the stages before the failure)."""
    per_status = {s: int((table["status"] == s).sum()) for s in STATUSES}
    order = STATUSES[:-1]
    reached = {}
    for stage in order[1:]:
        later = order[order.index(stage):]
        reached[stage] = int(table["status"].isin(later).sum())
    reached["downloaded"] += int((table["failed_stage"] == "extract").sum())
    return {"videos": len(table), "per_status": per_status, "reached_stage": reached}
