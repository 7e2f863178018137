"""Folders of images as an input kind.

Each folder that directly holds images is one input of kind ``images`` (a "video" row
of the video level): download records the folder without copying it, probe and the
clip stages pass it by, and extraction reads and normalises its images instead of
decoding, so every frame stage and export after it works on them as on sampled frames.
Grouping by folder keeps a folder in one split. An image's ``frame_index`` is a hash of
its name in the folder: stable when images are added or removed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Iterable

KIND = "images"


def _extensions(extensions: Iterable[str]) -> set[str]:
    return {e.lower() for e in extensions}


def image_folders(folder: str | os.PathLike, extensions: Iterable[str]) -> list[Path]:
    """The folders under ``folder`` (itself included, hidden ones not) that directly hold
    images, sorted."""
    exts = _extensions(extensions)
    found = []
    for parent, dirs, names in os.walk(folder):
        # Hidden folders are not inputs: a stage command's work folder sits in its output.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if any(Path(n).suffix.lower() in exts for n in names):
            found.append(Path(parent))
    return sorted(found)


def folder_images(folder: str | os.PathLike, extensions: Iterable[str]) -> list[str]:
    """The names of the images directly in ``folder``, sorted (subfolders are inputs of
    their own)."""
    exts = _extensions(extensions)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(e.name for e in entries if Path(e.name).suffix.lower() in exts and not e.is_dir())


def image_key(name: str) -> int:
    """An image's frame index: 60 bits of the hash of its name in its folder (positive in
    int64, and so stable whatever else the folder holds)."""
    return int(hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:15], 16)


def folder_identity(folder: str | os.PathLike, extensions: Iterable[str]) -> list:
    """What a folder's extraction is made from: each image's name, size and time. Any
    image added, removed or changed changes it (the folder is extracted again)."""
    identity = []
    for name in folder_images(folder, extensions):
        try:
            info = os.stat(Path(folder, name))
        except OSError:
            continue
        identity.append([name, info.st_size, info.st_mtime_ns])
    return identity


def folder_bytes(folder: str | os.PathLike, extensions: Iterable[str]) -> int:
    return sum(size for _, size, _ in folder_identity(folder, extensions))


def _normalised(path: Path, max_side: int | None):
    """The image upright (EXIF orientation applied), in RGB, at most ``max_side`` pixels
    on its longer side: what extraction writes for a video frame too."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            # Transparency over white, not black: a cut-out object stays visible.
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba).convert("RGB")
            else:
                image = image.convert("RGB")
        else:
            image.load()
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    return image


def extract_images(folder: str | os.PathLike, out_dir: str | os.PathLike, video_id: str, options,
                   extensions: Iterable[str]):
    """The images of one folder as frames in ``out_dir`` (``options``: the extraction's
    image format, quality and size). An image that cannot be read is a row that is not
    kept, with the reason; the folder fails only when no image is readable. Never raises."""
    from video_miner.extract import IMAGE_FORMATS, ExtractResult
    from video_miner.fsutil import atomic_path
    from video_miner.ids import frame_id

    started = time.perf_counter()
    folder, out_dir = Path(folder), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = folder_images(folder, extensions)
    fmt = IMAGE_FORMATS[options.image_format]
    kwargs = {"compress_level": 1} if fmt == "PNG" else {"quality": options.quality}
    rows, unreadable = [], 0
    for name in names:
        index = image_key(name)
        row = {"video_id": video_id, "frame_index": index, "frame_id": frame_id(video_id, index),
               "timestamp_s": 0.0, "keyframe": True, "clip_id": None, "image": (folder / name).as_posix()}
        try:
            image = _normalised(folder / name, options.max_side)
            path = out_dir / f"{index:08d}.{options.image_format}"
            with atomic_path(path, suffix=path.suffix) as tmp:
                image.save(tmp, format=fmt, **kwargs)
        except Exception as exc:  # Pillow raises many kinds for a broken or odd file
            unreadable += 1
            reason = f"unreadable image: {type(exc).__name__}: {exc}"[:300]
            rows.append({**row, "width": 0, "height": 0, "path": "", "kept": False, "reason": reason})
            continue
        rows.append({**row, "width": image.width, "height": image.height, "path": path.as_posix()})
    readable = len(names) - unreadable
    reason = None if readable else ("no readable images" if names else "no images in the folder")
    return ExtractResult(rows, "failed" if reason else "ok", reason, len(names), readable, unreadable,
                         round(time.perf_counter() - started, 3))
