"""Where every video stands, derived from the stage tables (nothing is stored, so it
cannot go stale): ``pending``, the status word of the last enabled stage it went
through, ``complete`` once every enabled stage ran for it, or ``failed`` with the stage
and reason. The words and their order come from the stage registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from video_miner.sources import assign_shards, collect_videos
from video_miner.stages import STATUSES, Stage, enabled_stages
from video_miner.summary import stage_failures
from video_miner.tables.video import VIDEO

REGISTRY_COLUMNS = ["video_id", "status", "failed_stage", "reason", "kind", "location", "origin", "title"]
RUN_CONFIG = Path("results", "run_config.yaml")


def run_config(root: str | Path = ".") -> dict | None:
    """The configuration the last run in ``root`` ran with, if it recorded one."""
    path = Path(root, RUN_CONFIG)
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text())


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _stage_done(current: Stage, shard: str, root: Path, stages: list[Stage]) -> bool:
    """A per-shard stage is done for a shard when its table exists; a run-wide one when
    its table is newer than the shard's table of the stage before it."""
    table = root / current.table(shard)
    if current.per_shard:
        return table.exists()
    before = stages[stages.index(current) - 1]
    done_at, before_at = _mtime(table), _mtime(root / before.table(shard))
    return bool(done_at and before_at and done_at >= before_at)


def video_statuses(config: dict, root: str | Path = ".") -> pd.DataFrame:
    """One row per video of the configured run, in listing order."""
    root = Path(root)
    collection = collect_videos(config, str(root))
    stages = enabled_stages(config)
    rows = {v: {"video_id": v, "status": "pending", "failed_stage": None, "reason": None, "kind": s.kind,
                "location": s.location, "origin": s.origin, "title": None}
            for v, s in collection.videos.items()}
    for shard, members in assign_shards(collection, config["shard_size"]).items():
        failed: dict[str, tuple[str, str]] = {}
        for current in stages:
            if not _stage_done(current, shard, root, stages):
                break
            paths = [str(root / current.table(shard))]
            if current.name == "download":
                titles = VIDEO.read(paths, columns=["title"]).set_index("video_id")["title"]
                for video_id in members:
                    rows[video_id]["title"] = titles.get(video_id)
            if current.per_shard:
                for video_id, reason in stage_failures(current, paths).items():
                    failed.setdefault(video_id, (current.name, reason))
            for video_id in members:
                rows[video_id]["status"] = current.status
        else:
            for video_id in members:
                rows[video_id]["status"] = "complete"
        for video_id, (stage_name, reason) in failed.items():
            if video_id in rows:
                rows[video_id].update(status="failed", failed_stage=stage_name, reason=reason)
    return pd.DataFrame(list(rows.values()), columns=REGISTRY_COLUMNS)


def status_words(config: dict) -> list[str]:
    """The statuses a video of this configuration can have, in order."""
    enabled = {s.status for s in enabled_stages(config)}
    return [s for s in STATUSES if s in enabled or s in ("pending", "complete", "failed")]


def status_counts(table: pd.DataFrame, config: dict) -> dict:
    """Videos per status, and how many went through each enabled stage (a video at a
    later stage counts for every earlier one; a failed one for the stages before its
    failure)."""
    words = status_words(config)
    per_status = {s: int((table["status"] == s).sum()) for s in words}
    stages = enabled_stages(config)
    order = [s.status for s in stages] + ["complete"]
    reached = {}
    for i, current in enumerate(stages):
        later = order[i:]
        failed_after = table["failed_stage"].isin([s.name for s in stages[i + 1:]])
        reached[current.name] = int(table["status"].isin(later).sum() + failed_after.sum())
    return {"videos": len(table), "per_status": per_status, "reached_stage": reached}
