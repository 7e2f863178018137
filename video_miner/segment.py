"""Masks for the kept boxes: SAM (transformers' native ``SamModel``/``SamProcessor``)
prompted with each box. The image encoder runs on ``segment.batch_size`` frames at a
time, then the mask decoder once per frame with all of its boxes. Each mask is cut to its
box (SAM prompted with a box segments what is inside it; pixels outside are leakage) and
stored as COCO RLE of the whole frame (``counts`` as a string) with its area in pixels.
A box whose mask is empty keeps its box, with an empty mask and area 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.models import ModelSettings, _batches, load_hf_model, load_image, prefetch
from video_miner.shardjob import Lazy, VideoCache, cached_frame_results
from video_miner.tables.frame import FRAME, MASK_FIELDS, UNREADABLE, annotation_fields

# The segment table's own column, besides the masks it hands on: SAM's predicted IoU per mask.
SEGMENT_FIELDS = (pa.field("mask_score", pa.list_(pa.float32()), nullable=False),)


def box_pixels(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel rows and columns a box (xywh) covers: x0, y0, x1, y1 (exclusive)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    return x0, y0, max(x1, x0), max(y1, y0)


def encode_mask(mask: np.ndarray) -> tuple[str, float]:
    """A boolean ``(height, width)`` mask as COCO RLE counts (a string) and its area."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("ascii"), float(mask_utils.area(rle))


def decode_mask(counts: str, width: int, height: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": [int(height), int(width)], "counts": counts.encode("ascii")}).astype(bool)


def cut_to_box(mask: np.ndarray, box: Sequence[float]) -> np.ndarray:
    height, width = mask.shape
    x0, y0, x1, y1 = box_pixels(box, width, height)
    out = np.zeros_like(mask, dtype=bool)
    out[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    return out


class SamSegmenter:
    """SAM with a box per prompt. ``masks(images, boxes)`` gives, per image, one boolean
    mask of the image's size per box (xywh), and SAM's predicted IoU of each."""

    def __init__(self, model_id: str, settings: ModelSettings, batch_size: int):
        import torch

        loaded = load_hf_model(model_id, settings, "SamModel", "SamProcessor", role="segmenter")
        self.model, self.processor = loaded.model, loaded.processor
        self.device, self.dtype = loaded.device, loaded.dtype
        self.batch_size = batch_size
        self._torch = torch

    def masks(self, images: Sequence[Image.Image], boxes: Sequence[Sequence[Sequence[float]]]
              ) -> list[tuple[list[np.ndarray], list[float]]]:
        torch = self._torch
        results = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = list(images[start : start + self.batch_size])
                batch_boxes = boxes[start : start + self.batch_size]
                inputs = self.processor.image_processor(images=batch, return_tensors="pt")
                pixels = inputs["pixel_values"].to(self.device, self.dtype)
                embeddings = self.model.get_image_embeddings(pixels)
                for i, (image, frame_boxes) in enumerate(zip(batch, batch_boxes)):
                    results.append(self._decode(embeddings[i : i + 1], image, frame_boxes,
                                                inputs["original_sizes"][i : i + 1],
                                                inputs["reshaped_input_sizes"][i : i + 1]))
        return results

    def _decode(self, embedding, image: Image.Image, boxes, original, reshaped):
        if not len(boxes):
            return [], []
        torch = self._torch
        (old_h, old_w), (new_h, new_w) = original[0].tolist(), reshaped[0].tolist()
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)
        xyxy *= np.array([new_w / old_w, new_h / old_h, new_w / old_w, new_h / old_h], np.float32)
        prompt = torch.from_numpy(xyxy)[None].to(self.device, self.dtype)
        out = self.model(image_embeddings=embedding, input_boxes=prompt, multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(out.pred_masks.float().cpu(), original, reshaped)
        masks = masks[0][:, 0].numpy().astype(bool)  # (boxes, height, width)
        scores = out.iou_scores.float().cpu().numpy().reshape(-1).tolist()
        return [cut_to_box(m, b) for m, b in zip(masks, boxes)], scores


def segment_boxes(frames: pd.DataFrame, segmenter, workers: int = 2) -> list[dict | None]:
    """Per frame: ``{"segmentation": [counts, ...], "mask_area": [...], "mask_score": [...]}``
    in box order, or None for an unreadable image. Frames without boxes need no model."""
    rows = list(frames.itertuples(index=False))

    def load(row):
        return load_image(row.path) if len(row.bbox) else "none"

    images = list(prefetch(load, rows, workers, depth=4 * max(1, workers)))
    todo = [i for i, im in enumerate(images) if im is not None and not isinstance(im, str)]
    found: dict[int, tuple] = {}
    for chunk in _batches(todo, 64):  # bounds the decoded frames and masks held at once
        masks = segmenter().masks([images[i] for i in chunk], [rows[i].bbox for i in chunk])
        found.update(zip(chunk, masks))
    out: list[dict | None] = []
    for i, image in enumerate(images):
        if image is None:
            out.append(None)
        elif i not in found:
            out.append({"segmentation": [], "mask_area": [], "mask_score": []})
        else:
            encoded = [encode_mask(m) for m in found[i][0]]
            out.append({"segmentation": [c for c, _ in encoded], "mask_area": [a for _, a in encoded],
                        "mask_score": [round(float(s), 4) for s in found[i][1]]})
    return out


def segment_frames(frames: pd.DataFrame, segmenter_factory, classes: Sequence[str], cache: VideoCache,
                   workers: int = 2) -> tuple[pa.Table, dict]:
    """Masks for the boxes of a shard's frames (the kept rows of the stage before); SAM is
    loaded once, and only when a video not done in an earlier run has boxes."""
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    segmenter = Lazy(segmenter_factory)
    per_video = cached_frame_results(cache, frames, lambda part: segment_boxes(part, segmenter, workers),
                                     identity_columns=("bbox",))
    results = [r for rs in per_video.values() for r in rs]
    table = frames.copy()
    empty = {"segmentation": [], "mask_area": [], "mask_score": []}
    for column in empty:
        table[column] = [(r or empty)[column] for r in results]
    table["kept"] = [r is not None for r in results]
    table["reason"] = ["" if r is not None else UNREADABLE for r in results]
    areas = [a for r in results if r for a in r["mask_area"]]
    record = {
        "frames": len(table), "unreadable": int(sum(r is None for r in results)),
        "frames_with_detections": int(table["has_detections"].sum()) if len(table) else 0,
        "masks": len(areas), "empty_masks": int(sum(a == 0 for a in areas)),
        "detections": _per_class(table, classes),
    }
    fields = [*annotation_fields([*table.columns, *(f.name for f in MASK_FIELDS)]), *SEGMENT_FIELDS]
    return FRAME.table(table, *fields), record


def _per_class(table: pd.DataFrame, classes: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(classes, 0)
    for categories in table["category"] if "category" in table else []:
        for c in categories:
            counts[c] = counts.get(c, 0) + 1
    return counts
