"""Text-prompt frame filter: per-frame scores for every class, the best class, and
whether the frame is kept (any class at or above its threshold, optionally only the top
k frames of each video)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.shardjob import Lazy, VideoCache, cached_frame_results
from video_miner.tables.frame import FRAME, FRAME_COLUMNS, UNREADABLE


def score_column(prompt: str) -> str:
    return f"score:{prompt}"


def decide(frames: pd.DataFrame, scores: np.ndarray, classes: list[str], threshold: float,
           class_thresholds: dict[str, float] | None = None, keep_top_k: int | None = None) -> pd.DataFrame:
    """The filter table: frame columns, one score column per class, best_class,
    best_score, kept and the reason a frame is not kept. Unreadable frames (NaN scores)
    are never kept."""
    table = frames[FRAME_COLUMNS].copy().reset_index(drop=True)
    for i, prompt in enumerate(classes):
        table[score_column(prompt)] = scores[:, i].astype(np.float32)
    readable = ~np.isnan(scores).any(axis=1)
    safe = np.where(np.isnan(scores), -np.inf, scores)
    best = safe.argmax(axis=1) if len(classes) else np.zeros(len(frames), int)
    table["best_class"] = pd.array([classes[b] if ok else None for b, ok in zip(best, readable)], dtype="string")
    table["best_score"] = np.where(readable, safe[np.arange(len(frames)), best], np.nan).astype(np.float32)
    limits = np.array([(class_thresholds or {}).get(c, threshold) for c in classes], dtype=np.float32)
    above = (safe >= limits).any(axis=1) & readable
    reason = np.where(readable, "", UNREADABLE).astype(object)
    reason[readable & ~above] = "below threshold"
    kept = above
    if keep_top_k:
        # Rank by best score within each video; ties go to the earlier frame.
        order = table.assign(_neg=-table["best_score"].fillna(-np.inf)).sort_values(["video_id", "_neg", "frame_index"])
        rank = order.groupby("video_id").cumcount().reindex(table.index).to_numpy()
        outside = kept & (rank >= keep_top_k)
        reason[outside] = f"not in the top {keep_top_k} of its video"
        kept = kept & ~outside
    table["kept"] = kept
    table["reason"] = reason
    return table


def filter_shard(frames: pd.DataFrame, scorer_factory, settings: dict, cache: VideoCache) -> tuple[pd.DataFrame, dict]:
    """Score every frame of a shard's videos (``frames``: the kept rows of the stage
    before). The scorer is made (the model loaded) once, and only for videos not scored
    in an earlier run of this job."""
    classes = list(settings["classes"])
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    scorer = Lazy(lambda: scorer_factory(classes))
    per_video = cached_frame_results(cache, frames, lambda part: scorer().process(part["path"].tolist()))
    scores = np.concatenate(list(per_video.values())) if per_video else np.zeros((0, len(classes)), np.float32)
    table = decide(frames, scores, classes, settings["threshold"], settings.get("class_thresholds"),
                   settings.get("keep_top_k"))
    record = {"model": settings["model"], "classes": classes, "threshold": settings["threshold"],
              "frames": len(table), "kept": int(table["kept"].sum()),
              "unreadable": int((table["reason"] == UNREADABLE).sum())}
    return table, record


def filter_fields(classes: list[str]) -> list[pa.Field]:
    return [*(pa.field(score_column(c), pa.float32()) for c in classes),
            pa.field("best_class", pa.string()), pa.field("best_score", pa.float32())]


def write_filter_table(path, table: pd.DataFrame, record: dict) -> None:
    FRAME.write(path, FRAME.table(table, *filter_fields(record["classes"])), record)
