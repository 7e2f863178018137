"""The split frames as a YOLO detection dataset (the layout Ultralytics reads):

```
results/export/yolo/
  data.yaml                         train/val/test folders, nc, names (index: class, config order)
  images/<split>/<video>_<frame>.jpg  hard links to the frames (copies where links cannot be made)
  labels/<split>/<video>_<frame>.txt  one line per box: class x_center y_center width height
```

Coordinates are normalised by the image size after clipping the box to the image, so
every value is in [0, 1]; a box with nothing left inside the image is dropped. A frame
without boxes has an empty label file (a background image, as YOLO expects). Every split
with a share above 0 has its folders, empty ones included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from video_miner.fsutil import atomic_dir, safe_name
from video_miner.blur import export_frame


def yolo_box(bbox: Sequence[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """A pixel box ``x, y, w, h`` (top left corner and size) as YOLO's ``x_center,
    y_center, width, height`` in [0, 1], clipped to the image; None when nothing of it is
    inside the image."""
    x, y, w, h = (float(v) for v in bbox)
    left, right = min(max(x, 0.0), width), min(max(x + w, 0.0), width)
    top, bottom = min(max(y, 0.0), height), min(max(y + h, 0.0), height)
    if right - left <= 0 or bottom - top <= 0:
        return None
    return ((left + right) / 2 / width, (top + bottom) / 2 / height, (right - left) / width, (bottom - top) / height)


def label_lines(categories: Sequence[str], bboxes: Sequence[Sequence[float]], width: int, height: int,
                class_index: dict[str, int]) -> list[str]:
    """A frame's label file: ``class x_center y_center width height`` per box, 6 decimals."""
    lines = []
    for category, bbox in zip(categories, bboxes):
        box = yolo_box(bbox, width, height)
        if box is not None:
            lines.append(f"{class_index[category]} " + " ".join(f"{v:.6f}" for v in box))
    return lines


def yolo_stem(video_id: str, frame_index: int) -> str:
    """An image's name without extension, unique in the dataset: ``<video>_<frame>``."""
    return f"{safe_name(video_id)}_{int(frame_index):08d}"


def data_yaml(classes: Sequence[str], splits: Sequence[str]) -> str:
    """``data.yaml``: no ``path`` key, so Ultralytics takes the folder of the file itself
    (the export can move)."""
    data = {name: f"images/{name}" for name in splits}
    data.update(nc=len(classes), names=dict(enumerate(classes)))
    header = "# video-miner YOLO export: images/<split>/ and labels/<split>/, classes in config order\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_yolo(out_dir: str | os.PathLike, frames: pd.DataFrame, classes: Sequence[str],
               splits: Sequence[str], regions: dict[str, list] | None = None) -> dict:
    """``frames``: the kept rows of the split table, with their boxes. Returns the images
    and boxes written per split and the boxes dropped (nothing inside the image).
    ``regions``: with privacy on, the regions to blur per frame id; also written to
    ``blurred_regions.json`` (image path -> xywh regions, images with any)."""
    class_index = {c: i for i, c in enumerate(classes)}
    counts = {name: {"images": 0, "boxes": 0} for name in splits}
    dropped, blurred = 0, {}
    with atomic_dir(out_dir) as tmp:
        for name in splits:
            (tmp / "images" / name).mkdir(parents=True)
            (tmp / "labels" / name).mkdir(parents=True)
        for row in frames.itertuples(index=False):
            stem = yolo_stem(row.video_id, row.frame_index)
            image = f"images/{row.split}/{stem}{Path(row.path).suffix.lower()}"
            blur = (regions or {}).get(row.frame_id, [])
            export_frame(row.path, tmp / image, blur)
            if blur:
                blurred[image] = [[float(v) for v in r] for r in blur]
            lines = label_lines(row.category, row.bbox, int(row.width), int(row.height), class_index)
            (tmp / "labels" / row.split / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines))
            counts[row.split]["images"] += 1
            counts[row.split]["boxes"] += len(lines)
            dropped += len(row.bbox) - len(lines)
        (tmp / "data.yaml").write_text(data_yaml(classes, splits), encoding="utf-8")
        if regions is not None:
            (tmp / "blurred_regions.json").write_text(json.dumps(blurred, indent=1), encoding="utf-8")
    return {"splits": counts, "dropped_boxes": dropped}
