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
