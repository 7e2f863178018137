"""Text-prompt frame filter: per-frame scores for every class, the best class, and
whether the frame passes (any class at or above its threshold, optionally only the
top k frames of each video)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from video_miner.tables import write_parquet


FRAME_COLUMNS = ["video_id", "frame_index", "timestamp_s", "width", "height", "path"]


def score_column(prompt: str) -> str:
    return f"score:{prompt}"


def read_manifests(paths: list[str]) -> pd.DataFrame:
    """All frames of the given per-video manifests, in video then frame order."""
    tables = [pq.read_table(p, columns=FRAME_COLUMNS) for p in paths]
    if not tables:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    frames = pa.concat_tables(tables).to_pandas()
    return frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)


def decide(frames: pd.DataFrame, scores: np.ndarray, classes: list[str], threshold: float,
           class_thresholds: dict[str, float] | None = None, keep_top_k: int | None = None) -> pd.DataFrame:
    """The filter table: frame columns, one score column per class, best_class,
    best_score, passed. Unreadable frames (NaN scores) never pass."""
    table = frames[FRAME_COLUMNS].copy()
    for i, prompt in enumerate(classes):
        table[score_column(prompt)] = scores[:, i].astype(np.float32)
    readable = ~np.isnan(scores).any(axis=1)
    safe = np.where(np.isnan(scores), -np.inf, scores)
    best = safe.argmax(axis=1) if len(classes) else np.zeros(len(frames), int)
    table["best_class"] = pd.array([classes[b] if ok else None for b, ok in zip(best, readable)], dtype="string")
    table["best_score"] = np.where(readable, safe[np.arange(len(frames)), best], np.nan).astype(np.float32)
    limits = np.array([(class_thresholds or {}).get(c, threshold) for c in classes], dtype=np.float32)
    passed = (safe >= limits).any(axis=1) & readable
    if keep_top_k:
        # Rank by best score within each video; ties go to the earlier frame.
        order = table.assign(_neg=-table["best_score"].fillna(-np.inf)).sort_values(["video_id", "_neg", "frame_index"])
        rank = order.groupby("video_id").cumcount()
        passed &= (rank.reindex(table.index) < keep_top_k).to_numpy()
    table["passed"] = passed
    return table


def filter_shard(manifest_paths: list[str], scorer_factory, settings: dict) -> tuple[pd.DataFrame, dict]:
    """Score every frame of a shard's videos. The scorer is made (the model loaded) once,
    and only when there are frames to score."""
    frames = read_manifests(manifest_paths)
    classes = list(settings["classes"])
    if len(frames):
        scores = scorer_factory(classes).process(frames["path"].tolist())
    else:
        scores = np.zeros((0, len(classes)), np.float32)
    table = decide(frames, scores, classes, settings["threshold"], settings.get("class_thresholds"),
                   settings.get("keep_top_k"))
    record = {"model": settings["model"], "classes": classes, "threshold": settings["threshold"],
              "frames": len(table), "passed": int(table["passed"].sum()), "unreadable": int(table["best_class"].isna().sum())}
    return table, record


def write_filter_table(path, table: pd.DataFrame, record: dict) -> None:
    write_parquet(path, pa.Table.from_pandas(table, preserve_index=False), record)
