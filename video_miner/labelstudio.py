"""Review before training: the split frames as Label Studio tasks, their boxes as
predictions (pre-annotations a person corrects), and the labeling config that names the
classes.

A task's image is ``url_prefix + <its path inside results/dataset>``; the default prefix
is Label Studio's local-files server (``/data/local-files/?d=``). A box is a
``rectanglelabels`` result in percent of the image (x, y of the top left corner, width,
height), clipped to the image.
"""

from __future__ import annotations

import os
from typing import Sequence
from xml.sax.saxutils import quoteattr

import pandas as pd

from video_miner.export import dataset_file_name
from video_miner.fsutil import write_json_atomic, write_text_atomic

FROM_NAME, TO_NAME = "label", "image"


def _percent(value: float, size: float) -> float:
    return round(min(max(value / size * 100.0, 0.0), 100.0), 4)


def rectangle(bbox: Sequence[float], category: str, score: float, width: int, height: int, region: str) -> dict:
    """One pixel box ``x, y, w, h`` as a Label Studio ``rectanglelabels`` result."""
    x, y, w, h = (float(v) for v in bbox)
    left, top = _percent(x, width), _percent(y, height)
    return {
        "id": region,
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "rectanglelabels",
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {
            "x": left,
            "y": top,
            "width": round(_percent(x + w, width) - left, 4),
            "height": round(_percent(y + h, height) - top, 4),
            "rotation": 0,
            "rectanglelabels": [str(category)],
        },
        "score": round(float(score), 4),
    }


def task(row, url_prefix: str, model_version: str) -> dict:
    """One frame (a row of the split table with its boxes) as a task with one prediction
    (empty for a frame without boxes: the reviewer may add some)."""
    results = [rectangle(box, category, score, row.width, row.height, f"r{i}")
               for i, (box, category, score) in enumerate(zip(row.bbox, row.category, row.score))]
    prediction = {"model_version": model_version, "result": results}
    if len(row.score):  # the least sure box: sorting tasks by it puts the doubtful first
        prediction["score"] = round(min(float(s) for s in row.score), 4)
    return {
        "data": {
            "image": url_prefix + dataset_file_name(row.split, row.video_id, row.frame_index, row.path),
            "frame_id": row.frame_id,
            "video_id": row.video_id,
            "frame_index": int(row.frame_index),
            "timestamp_s": float(row.timestamp_s),
            "split": row.split,
        },
        "predictions": [prediction],
    }


def labeling_config(classes: Sequence[str]) -> str:
    """The project's labeling config: the image and one rectangle label per class."""
    labels = "\n".join(f"    <Label value={quoteattr(str(c))}/>" for c in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n</View>\n')


def write_label_studio(tasks_path: str | os.PathLike, config_path: str | os.PathLike, frames: pd.DataFrame,
                       classes: Sequence[str], url_prefix: str, model_version: str) -> int:
    """``tasks.json`` (one task per split frame) and the labeling ``config.xml``."""
    tasks = [task(row, url_prefix, model_version) for row in frames.itertuples(index=False)]
    write_json_atomic(tasks_path, tasks)
    write_text_atomic(config_path, labeling_config(classes))
    return len(tasks)
