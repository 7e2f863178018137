"""Box verification: open-set detectors hallucinate boxes, so each box's crop is scored
against ``detection.verify_template.format(class)`` ("a photo of a cat") with the text
filter's SigLIP2 checkpoint, and boxes scoring under ``detection.verify_threshold`` are
dropped, each with its reason, in the ``dropped`` column. A frame stays (with the boxes
that passed, or none: a negative) unless its image cannot be read.

The decision (:func:`decide`) is apart from the scoring, so it is tested with scores
chosen by hand.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.models import load_image, prefetch
from video_miner.shardjob import Lazy, VideoCache, cached_frame_results
from video_miner.tables.frame import FRAME, UNREADABLE, annotation_fields

DROPPED = pa.struct([
    pa.field("category", pa.string()),
    pa.field("score", pa.float32()),
    pa.field("bbox", pa.list_(pa.float32(), 4)),
    pa.field("verify_score", pa.float32()),
    pa.field("reason", pa.string()),
])
# The verify table's own columns, after the boxes it kept: each kept box's crop score and
# the boxes it dropped.
VERIFY_FIELDS = (pa.field("verify_score", pa.list_(pa.float32()), nullable=False),
                 pa.field("dropped", pa.list_(DROPPED), nullable=False))


def crop_box(image: Image.Image, box: Sequence[float], padding: float) -> Image.Image:
    """The box (xywh) with ``padding`` of its width and height added on each side, inside
    the frame, at least one pixel."""
    x, y, w, h = (float(v) for v in box)
    x0 = int(np.floor(max(0.0, x - padding * w)))
    y0 = int(np.floor(max(0.0, y - padding * h)))
    x1 = int(np.ceil(min(float(image.width), x + w + padding * w)))
    y1 = int(np.ceil(min(float(image.height), y + h + padding * h)))
    x0, y0 = min(x0, image.width - 1), min(y0, image.height - 1)
    return image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))


def prompts(classes: Sequence[str], template: str) -> list[str]:
    return [template.format(c) for c in classes]


def decide(frames: pd.DataFrame, scores: Sequence[Sequence[float] | None], threshold: float,
           template: str) -> pd.DataFrame:
    """The verify table: ``frames`` (the kept rows of the stage before, with their boxes)
    keep the boxes whose ``scores`` (one per box, against its class's prompt) reach
    ``threshold``; the others move to ``dropped`` with the reason. ``None`` scores: the
    frame's image could not be read (not kept)."""
    table = frames.copy().reset_index(drop=True)
    readable = [s is not None for s in scores]
    columns: dict[str, list] = {"category": [], "score": [], "bbox": [], "verify_score": [], "dropped": []}
    for row, frame_scores in zip(table.itertuples(index=False), scores):
        if frame_scores is None:  # not kept: its boxes stay as they were, unscored
            frame_scores, keep = [np.nan] * len(row.category), [True] * len(row.category)
        else:
            frame_scores = list(frame_scores)
            keep = [bool(s >= threshold) for s in frame_scores]
        for name, values in (("category", row.category), ("score", row.score), ("bbox", row.bbox)):
            columns[name].append([v for v, k in zip(values, keep) if k])
        columns["verify_score"].append([float(s) for s, k in zip(frame_scores, keep) if k])
        columns["dropped"].append([
            {"category": c, "score": float(s), "bbox": [float(v) for v in b], "verify_score": float(v_s),
             "reason": f"crop scored {v_s:.4f} for {template.format(c)!r}, under detection.verify_threshold "
                       f"{threshold:g}"}
            for c, s, b, v_s, k in zip(row.category, row.score, row.bbox, frame_scores, keep) if not k])
    for name, values in columns.items():
        table[name] = values
    table["has_detections"] = [len(c) > 0 for c in table["category"]]
    table["kept"] = readable
    table["reason"] = ["" if ok else UNREADABLE for ok in readable]
    return table


def score_boxes(frames: pd.DataFrame, scorer, classes: Sequence[str], padding: float,
                workers: int = 2) -> list[list[float] | None]:
    """Each box's crop score against its class's prompt, per frame (None: unreadable).
    Frames are decoded and cropped on worker threads; the crops of many frames share a
    batch."""
    index = {c: i for i, c in enumerate(classes)}

    def crops(row) -> list[Image.Image] | None:
        if not len(row.bbox):
            return []
        image = load_image(row.path)
        return None if image is None else [crop_box(image, b, padding) for b in row.bbox]

    rows = list(frames.itertuples(index=False))
    per_frame = list(prefetch(crops, rows, workers, depth=4 * max(1, workers)))
    flat = [c for frame_crops in per_frame if frame_crops for c in frame_crops]
    matrix = scorer().score_images(flat) if flat else np.zeros((0, len(classes)), np.float32)
    out: list[list[float] | None] = []
    start = 0
    for row, frame_crops in zip(rows, per_frame):
        if frame_crops is None:
            out.append(None)
            continue
        part = matrix[start : start + len(frame_crops)]
        start += len(frame_crops)
        out.append([float(part[i, index[c]]) for i, c in enumerate(row.category)])
    return out


def verify_frames(frames: pd.DataFrame, scorer_factory: Callable[[list[str]], object], settings: dict,
                  cache: VideoCache, workers: int = 2) -> tuple[pa.Table, dict]:
    """Verify the boxes of a shard's frames (the kept rows of the stage before). The scorer
    (SigLIP2, with the prompts) is made once, and only when a video not done in an earlier
    run of this job has boxes."""
    classes = list(settings["classes"])
    template, threshold = settings["verify_template"], float(settings["verify_threshold"])
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    scorer = Lazy(lambda: scorer_factory(prompts(classes, template)))
    per_video = cached_frame_results(
        cache, frames,
        lambda part: score_boxes(part, scorer, classes, float(settings["verify_padding"]), workers),
        identity_columns=("category", "bbox"))
    scores = [s for results in per_video.values() for s in results]
    table = decide(frames, scores, threshold, template)
    kept_boxes = pd.Series([c for cats in table.loc[table["kept"], "category"] for c in cats],
                           dtype="string").value_counts()
    dropped = pd.Series([d["category"] for ds in table["dropped"] for d in ds], dtype="string").value_counts()
    record = {
        "model": settings["model"], "template": template, "threshold": threshold,
        "frames": len(table), "unreadable": int((~table["kept"]).sum()),
        "frames_with_detections": int((table["has_detections"] & table["kept"]).sum()),
        "detections": {c: int(kept_boxes.get(c, 0)) for c in classes},
        "dropped": {c: int(dropped.get(c, 0)) for c in classes},
        "verify_scores": _score_summary([s for ss in scores if ss for s in ss]),
    }
    return FRAME.table(table, *annotation_fields(table.columns), *VERIFY_FIELDS), record


def _score_summary(values: list[float]) -> dict:
    """Quantiles of the crop scores, for choosing a threshold."""
    if not values:
        return {"boxes": 0}
    q = np.quantile(np.asarray(values, np.float64), [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    return {"boxes": len(values), **{k: round(float(v), 6) for k, v in zip(
        ("min", "p10", "p25", "median", "p75", "p90", "max"), q)}}

