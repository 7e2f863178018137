"""What the user takes home: the final frame set, COCO annotations, an imagefolder
dataset with ``metadata.jsonl`` and drawn visualisations."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from video_miner.fsutil import atomic_dir, safe_name, write_json_atomic
from video_miner.tables.frame import FRAME


def final_frames(paths: Sequence[str], videos: Sequence[str] | None = None) -> pd.DataFrame:
    """The frames that make the dataset: the kept rows of the last enabled frame stage
    (with its boxes when that is detection), of ``videos`` only when given (duplicates
    stay extracted: with every model stage off, the last frame stage still holds them)."""
    return FRAME.read_kept(list(paths), videos=videos)


def dataset_file_name(video_id: str, frame_index: int, path: str) -> str:
    """Where a frame lives inside the dataset (and its COCO ``file_name``)."""
    return f"images/{safe_name(video_id)}/{int(frame_index):08d}{Path(path).suffix.lower()}"


def build_coco(detections: pd.DataFrame, classes: Sequence[str], info: dict | None = None) -> dict:
    """A COCO detection file: every kept (readable) frame is an image (with or without boxes),
    categories in config order with ids from 1, boxes as xywh with scores."""
    categories = [{"id": i + 1, "name": c, "supercategory": "object"} for i, c in enumerate(classes)]
    category_ids = {c: i + 1 for i, c in enumerate(classes)}
    images, annotations = [], []
    for row in detections.itertuples(index=False):
        image_id = len(images) + 1
        images.append({
            "id": image_id,
            "file_name": dataset_file_name(row.video_id, row.frame_index, row.path),
            "width": int(row.width),
            "height": int(row.height),
            "video_id": row.video_id,
            "frame_index": int(row.frame_index),
            "timestamp_s": float(row.timestamp_s),
        })
        for category, score, box in zip(row.category, row.score, row.bbox):
            x, y, w, h = (round(float(v), 2) for v in box)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[category],
                "bbox": [x, y, w, h],
                "area": round(w * h, 2),
                "score": round(float(score), 4),
                "iscrowd": 0,
            })
    return {
        "info": {"description": "video-miner detections", **(info or {})},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _link_or_copy(source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # across filesystems, or links not allowed
        shutil.copyfile(source, target)


def write_dataset(out_dir: str | os.PathLike, frames: pd.DataFrame, videos: dict[str, dict]) -> dict:
    """``out_dir`` as a Hugging Face imagefolder: ``images/<video>/<frame>.<ext>`` and
    ``metadata.jsonl`` with the source video, timestamp and (when ``frames`` come from
    detection) the objects (bbox xywh, category, score). ``videos``: download rows by id."""
    with_boxes = "category" in frames.columns
    written, missing = 0, []
    with atomic_dir(out_dir) as tmp:
        with open(Path(tmp, "metadata.jsonl"), "w", encoding="utf-8") as meta:
            for row in frames.itertuples(index=False):
                if not Path(row.path).is_file():  # deleted by hand since: said, not hidden
                    missing.append(row.path)
                    continue
                name = dataset_file_name(row.video_id, row.frame_index, row.path)
                _link_or_copy(row.path, Path(tmp, name))
                video = videos.get(row.video_id, {})
                line = {
                    "file_name": name,
                    "frame_id": row.frame_id,
                    "video_id": row.video_id,
                    "frame_index": int(row.frame_index),
                    "timestamp_s": float(row.timestamp_s),
                    "source": video.get("location"),
                    "title": video.get("title"),
                }
                if with_boxes:
                    line["objects"] = {
                        "bbox": [[float(v) for v in box] for box in row.bbox],
                        "category": [str(c) for c in row.category],
                        "score": [float(s) for s in row.score],
                    }
                meta.write(json.dumps(line, ensure_ascii=False) + "\n")
                written += 1
    return {"images": written, "missing": missing}


def _colour(index: int) -> tuple[int, int, int]:
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
    return palette[index % len(palette)]


def draw_detections(path: str, boxes: Sequence, categories: Sequence[str], scores: Sequence[float],
                    classes: Sequence[str]) -> Image.Image:
    with Image.open(path) as source:
        image = source.convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, image.height // 30))
    width = max(2, image.height // 200)
    for (x, y, w, h), category, score in zip(boxes, categories, scores):
        colour = _colour(list(classes).index(category) if category in classes else 0)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        label = f"{category} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        top_y = max(0, y - (bottom - top) - 2)
        draw.rectangle([x, top_y, x + (right - left) + 4, top_y + (bottom - top) + 2], fill=colour)
        draw.text((x + 2, top_y), label, fill=(0, 0, 0), font=font)
    return image


def write_visualizations(out_dir: str | os.PathLike, detections: pd.DataFrame, classes: Sequence[str],
                         max_images: int) -> int:
    """Frames with boxes drawn: those with detections, highest-scoring first, at most
    ``max_images``; named after the frame id."""
    with_boxes = detections[detections["has_detections"]]
    top = with_boxes.assign(_best=with_boxes["score"].map(lambda s: float(np.max(s))))
    top = top.sort_values(["_best", "frame_id"], ascending=[False, True]).head(max_images)
    with atomic_dir(out_dir) as tmp:
        for row in top.itertuples(index=False):
            image = draw_detections(row.path, row.bbox, row.category, row.score, classes)
            image.save(Path(tmp, safe_name(row.frame_id.replace("/", "_")) + ".jpg"), quality=90)
    return len(top)


def write_coco(path: str | os.PathLike, coco: dict) -> None:
    write_json_atomic(path, coco)
