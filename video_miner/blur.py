"""How the exporters write a frame with privacy on (:mod:`video_miner.privacy` finds the
regions): the same file when it has no region, else blurred inside its regions and
encoded again in its own format (JPEG/WebP at quality 95, PNG lossless). No OpenCV here:
the export jobs' environment has none."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageFilter

from video_miner import framestore

_SAVE = {".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}), ".webp": ("WEBP", {"quality": 95}),
         ".png": ("PNG", {"compress_level": 1})}


def blurred(image: Image.Image, regions: Sequence[Sequence[float]]) -> Image.Image:
    """``image`` with each region (xywh, whole pixels) blurred beyond recognition: a
    Gaussian blur whose radius is a quarter of the region's shorter side, from pixels of
    the region only (nothing outside it changes)."""
    out = image.convert("RGB")
    for x, y, w, h in regions:
        box = (int(x), int(y), int(x + w), int(y + h))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        patch = out.crop(box)
        radius = max(2.0, min(patch.size) / 4)
        out.paste(patch.filter(ImageFilter.GaussianBlur(radius)), box[:2])
    return out


def export_bytes(path: str, regions: Sequence[Sequence[float]] = ()) -> bytes:
    """A frame's bytes for an export: the same bytes when it has no region to blur, else
    the frame blurred in its regions, encoded again in its own format."""
    if not len(regions):
        return framestore.read_bytes(path)
    fmt, options = _SAVE.get(Path(path).suffix.lower(), ("PNG", {}))
    with framestore.open_image(path) as image:
        out = blurred(image, regions)
    buffer = io.BytesIO()
    out.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def export_frame(path: str, target: str | os.PathLike, regions: Sequence[Sequence[float]] = ()) -> None:
    """Write a frame for an export (:func:`export_bytes`): a hard link or copy when it has
    no region to blur."""
    if not len(regions):
        framestore.copy_to(path, target)
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # never write through a hard link to the original
    target.write_bytes(export_bytes(path, regions))


def read_regions(tables: Sequence[str]) -> dict[str, list[list[float]]]:
    """frame_id -> its regions, from the privacy tables (frames with none left out)."""
    import pyarrow.parquet as pq

    out = {}
    for path in tables:
        table = pq.read_table(path, columns=["frame_id", "regions"])
        for frame, regions in zip(table.column("frame_id").to_pylist(), table.column("regions").to_pylist()):
            if regions:
                out[frame] = regions
    return out


def unchecked_frames(tables: Sequence[str], frame_ids) -> set[str]:
    """The frames of ``frame_ids`` the privacy tables do not vouch for (unreadable when
    the stage looked, or absent): the split stage leaves them out of every export rather
    than let one go out unblurred."""
    import pyarrow.parquet as pq

    checked = set()
    for path in tables:
        table = pq.read_table(path, columns=["frame_id", "kept"])
        checked.update(f for f, kept in zip(table.column("frame_id").to_pylist(), table.column("kept").to_pylist())
                       if kept)
    return set(frame_ids) - checked
