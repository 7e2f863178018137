"""Where every video stands, derived from the stage tables and their times on every
call (nothing is stored): ``pending``, the status word of the last enabled stage it went
through, ``complete`` once every enabled stage ran for it, or ``failed`` with the stage
and reason (``rejected`` when a stage decided against a good video), or ``taken down``
when the takedown list removed a processed video from the exports. The words and their
order come from the stage registry."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from video_miner.fsutil import redact, write_text_atomic
from video_miner.sources import assign_shards, collect_videos
from video_miner.splits import read_takedown
from video_miner.stages import STAGES, STATUSES, TAKEN_DOWN, Stage, enabled_stages, upstream
from video_miner.summary import stage_failures
from video_miner.tables.video import VIDEO, rejected_videos

REGISTRY_COLUMNS = ["video_id", "status", "failed_stage", "reason", "kind", "location", "origin", "title"]
RUN_CONFIG = Path("results", "run_config.yaml")


def run_config(root: str | Path = ".") -> dict | None:
    """The configuration the last run in ``root`` ran with, if it recorded one."""
    path = Path(root, RUN_CONFIG)
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text())


_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential", re.IGNORECASE)


def redacted(config: dict) -> dict:
    """The configuration without secrets, to record with the results: credentials in
    proxy and upload URLs, and storage options whose names say they are secret."""

    def clean(value, key=""):
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return "<redacted>" if _SECRET_KEY.search(str(key)) and not key.endswith("_env") else redact(value)
        return value

    return clean(config)


def write_run_config(path: str | Path, config: dict) -> None:
    """Record the configuration a run ran with, without its secrets."""
    write_text_atomic(path, yaml.safe_dump(redacted(config), sort_keys=False))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _stage_done(current: Stage, shard: str, root: Path, config: dict) -> bool:
    """A stage is done for a shard when its table exists and is not older than the table
    of the stage it read (a table older than its input is due to run again)."""
    done_at = _mtime(root / current.table(shard))
    if done_at is None or current is STAGES[0]:
        return done_at is not None
    before_at = _mtime(root / upstream(current.name, config).table(shard))
    return before_at is not None and done_at >= before_at


def video_statuses(config: dict, root: str | Path = ".") -> pd.DataFrame:
    """One row per video of the configured run, in listing order. A video counts for a
    shard's tables only if it was in the shard when they were made (its download table
    lists it): a video appended since is pending."""
    root = Path(root)
    collection = collect_videos(config, str(root))
    stages = enabled_stages(config)
    rows = {v: {"video_id": v, "status": "pending", "failed_stage": None, "reason": None, "kind": s.kind,
                "location": s.location, "origin": s.origin, "title": None}
            for v, s in collection.videos.items()}
    for shard, members in assign_shards(collection, config["shard_size"]).items():
        failed: dict[str, tuple[str, str]] = {}
        covered: list[str] = []
        for current in stages:
            if not _stage_done(current, shard, root, config):
                break
            paths = [str(root / current.table(shard))]
            if current is stages[0]:
                read = VIDEO.read(paths, columns=["title", "source", "location"]).set_index("video_id")
                titles = read["title"]
                covered = [v for v in members if v in titles.index]
                if any(collection.videos[v].kind == "archive" for v in members):
                    # An archive's members are known from its download table: they are its videos.
                    origin = collection.videos[members[0]].origin
                    covered = list(titles.index)
                    if members[0] not in titles.index:  # read whole: no row of its own
                        rows.pop(members[0], None)
                    for video_id in covered:
                        rows.setdefault(video_id, {"video_id": video_id, "status": "pending", "failed_stage": None,
                                                   "reason": None, "kind": read.at[video_id, "source"],
                                                   "location": read.at[video_id, "location"], "origin": origin,
                                                   "title": None})
                for video_id in covered:
                    rows[video_id]["title"] = titles.get(video_id)
            if current.per_shard:
                for video_id, reason in stage_failures(current, paths).items():
                    failed.setdefault(video_id, (current.name, reason, "failed"))
            if current.level == "video":
                for video_id, reason in rejected_videos(paths).items():
                    failed.setdefault(video_id, (current.name, reason, "rejected"))
            for video_id in covered:
                rows[video_id]["status"] = current.status
        else:
            for video_id in covered:
                rows[video_id]["status"] = "complete"
        for video_id, (stage_name, reason, outcome) in failed.items():
            if video_id in covered:
                rows[video_id].update(status=outcome, failed_stage=stage_name, reason=reason)
    splits = root / "results" / "splits" / "frames.parquet"
    if splits.is_file():  # what the last split job took down (a processed video only, as in status.tsv)
        for video_id, reason in ((read_takedown(splits) or {}).get("videos") or {}).items():
            if video_id in rows and rows[video_id]["status"] == "complete":
                rows[video_id].update(status=TAKEN_DOWN, reason=reason)
    return pd.DataFrame(list(rows.values()), columns=REGISTRY_COLUMNS)


def status_words(config: dict) -> list[str]:
    """The statuses a video of this configuration can have, in order."""
    enabled = {s.status for s in enabled_stages(config)}
    return [s for s in STATUSES if s in enabled or s in ("pending", "complete", "rejected", "failed", TAKEN_DOWN)]


def status_counts(table: pd.DataFrame, config: dict) -> dict:
    """Videos per status, and how many went through each enabled stage (a video at a
    later stage counts for every earlier one; a failed one for the stages before its
    failure)."""
    words = status_words(config)
    per_status = {s: int((table["status"] == s).sum()) for s in words}
    stages = enabled_stages(config)
    order = [s.status for s in stages] + ["complete", TAKEN_DOWN]
    reached = {}
    for i, current in enumerate(stages):
        later = order[i:]
        failed_after = table["failed_stage"].isin([s.name for s in stages[i + 1:]])
        reached[current.name] = int(table["status"].isin(later).sum() + failed_after.sum())
    return {"videos": len(table), "per_status": per_status, "reached_stage": reached}
