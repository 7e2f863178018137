"""Privacy: the faces and licence plates of a shard's final frames, found once and
recorded (``results/privacy/<shard>.parquet``), blurred by the exporters when they write
frames. The extracted frames stay intact: only exports are blurred.

Where the boxes come from: the run's own detections of a privacy class (when detection
runs with it, any backend), else OpenCV's Haar cascades (shipped in
``opencv-python-headless<5``, no download). A region is a box of a privacy class, grown
by ``padding`` of its size on each side (a detector's box hugs the face; hair and ears
identify too), clipped to the frame; overlapping regions merge into their union so one
blur covers them.

Blurred exports (:mod:`video_miner.blur`, which the export jobs import without
OpenCV): a frame without a region is the same file (a hard link or the packed
bytes); a frame with regions is decoded, blurred inside its regions and encoded again in
its own format (JPEG/WebP at quality 95, PNG lossless), so outside the regions it
differs from the original only by that re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults

_DEFAULTS = section_defaults("privacy")
# The privacy table's own columns, after the frame level's shared ones: regions are xywh
# in pixels; ``region_class`` the class each was found as; ``region_source`` detection or
# cascade (per region).
PRIVACY_FIELDS = (
    pa.field("regions", pa.list_(pa.list_(pa.float32(), 4)), nullable=False),
    pa.field("region_class", pa.list_(pa.string()), nullable=False),
    pa.field("region_source", pa.list_(pa.string()), nullable=False),
)


@dataclass(frozen=True)
class PrivacySettings:
    classes: tuple[str, ...] = tuple(_DEFAULTS["classes"])
    padding: float = _DEFAULTS["padding"]
    min_score: float = _DEFAULTS["min_score"]

    @classmethod
    def from_config(cls, section: dict) -> "PrivacySettings":
        return cls(classes=tuple(section["classes"]), padding=float(section["padding"]),
                   min_score=float(section["min_score"]))


def _same_class(a: str, b: str) -> bool:
    spelling = {"licence plate": "license plate"}
    return spelling.get(a.lower(), a.lower()) == spelling.get(b.lower(), b.lower())


def padded(box: Sequence[float], padding: float, width: int, height: int) -> list[float] | None:
    """``box`` (xywh) grown by ``padding`` of its width and height on each side, clipped
    to the frame; None when nothing of it is inside."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0.0, x - padding * w), max(0.0, y - padding * h)
    x1, y1 = min(float(width), x + w + padding * w), min(float(height), y + h + padding * h)
    return [x0, y0, x1 - x0, y1 - y0] if x1 > x0 and y1 > y0 else None


def merged(regions: list[tuple[list[float], str, str]]) -> list[tuple[list[float], str, str]]:
    """Overlapping regions as their unions (transitively), in order of first appearance;
    a union keeps its first region's class and source."""
    out = [list(r) for r in regions]
    changed = True
    while changed:
        changed = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                (ax, ay, aw, ah), (bx, by, bw, bh) = out[i][0], out[j][0]
                if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                    x0, y0 = min(ax, bx), min(ay, by)
                    out[i][0] = [x0, y0, max(ax + aw, bx + bw) - x0, max(ay + ah, by + bh) - y0]
                    del out[j]
                    changed = True
                    break
            if changed:
                break
    return [tuple(r) for r in out]


def frame_regions(boxes: Sequence[Sequence[float]], categories: Sequence[str], scores: Sequence[float],
                  sources: Sequence[str], width: int, height: int, settings: PrivacySettings
                  ) -> tuple[list[list[float]], list[str], list[str]]:
    """The regions to blur in one frame from its boxes (xywh) of any classes: those of a
    privacy class at ``min_score`` or more, padded, clipped and merged. Returns the
    regions (whole pixels, outward), their classes and sources."""
    chosen = []
    for box, category, score, source in zip(boxes, categories, scores, sources):
        if float(score) < settings.min_score or not any(_same_class(category, c) for c in settings.classes):
            continue
        region = padded(box, settings.padding, width, height)
        if region is not None:
            x, y, w, h = region
            x0, y0 = np.floor(x), np.floor(y)
            region = [float(x0), float(y0), float(min(width, np.ceil(x + w)) - x0),
                      float(min(height, np.ceil(y + h)) - y0)]
            chosen.append((region, str(category), str(source)))
    result = merged(chosen)
    return [r[0] for r in result], [r[1] for r in result], [r[2] for r in result]


class CascadeFinder:
    """The privacy classes the run's detections do not cover, found with the opencv
    detection backend's Haar cascades."""

    def __init__(self, classes: Sequence[str], threads: int = 2):
        from video_miner.detection import DetectionSettings, make_detector
        from video_miner.models import ModelSettings

        self.classes = list(classes)
        settings = DetectionSettings(backend="opencv", classes=tuple(self.classes), threshold=0.0)
        self.detector = make_detector(settings, ModelSettings(device="cpu", num_workers=threads))

    def find(self, paths: Sequence[str]) -> list[tuple[list, list, list] | None]:
        """Per frame: boxes (xywh), classes and scores, or None when it cannot be read."""
        out = []
        for dets in self.detector.detect(list(paths)):
            if dets is None:
                out.append(None)
                continue
            boxes = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1, *_ in dets]
            out.append((boxes, [self.classes[int(d[5])] for d in dets], [float(d[4]) for d in dets]))
        return out


def privacy_table(frames: pd.DataFrame, settings: PrivacySettings, detected_classes: Sequence[str] = (),
                  threads: int = 2) -> pd.DataFrame:
    """The regions of each final frame (``frames``: the kept rows of the last frame stage;
    with its boxes when detection ran, ``detected_classes`` its classes). A frame that
    cannot be read is a row not kept, with the reason; its export has no image anyway."""
    covered = [c for c in settings.classes if any(_same_class(c, d) for d in detected_classes)]
    missing = [c for c in settings.classes if c not in covered]
    found = CascadeFinder(missing, threads).find(frames["path"].tolist()) if missing and len(frames) else None
    rows = []
    for k, row in enumerate(frames.itertuples(index=False)):
        boxes, categories, scores, sources = [], [], [], []
        if covered and "bbox" in frames.columns:
            boxes += [list(b) for b in row.bbox]
            categories += list(row.category)
            scores += [float(s) for s in row.score]
            sources += ["detection"] * len(row.bbox)
        reason = ""
        if found is not None:
            if found[k] is None:
                reason = f"unreadable frame {row.path}"
            else:
                boxes += found[k][0]
                categories += found[k][1]
                scores += found[k][2]
                sources += ["cascade"] * len(found[k][0])
        regions, classes, origins = frame_regions(boxes, categories, scores, sources, int(row.width),
                                                  int(row.height), settings)
        rows.append({"video_id": row.video_id, "frame_index": int(row.frame_index), "frame_id": row.frame_id,
                     "timestamp_s": float(row.timestamp_s), "width": int(row.width), "height": int(row.height),
                     "path": row.path, "kept": not reason, "reason": reason, "regions": regions,
                     "region_class": classes, "region_source": origins})
    return pd.DataFrame(rows, columns=["video_id", "frame_index", "frame_id", "timestamp_s", "width", "height", "path",
                                       "kept", "reason", "regions", "region_class", "region_source"])
