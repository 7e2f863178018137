"""Strict checks of the training exports, shared by the unit tests and the demo's tests."""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def check_yolo(root: Path) -> dict[str, set[str]]:
    """A YOLO export as a trainer reads it: ``data.yaml`` names the classes (indices 0..n-1)
    and each split's image folder; every value of every label line is in [0, 1] and its
    class index < len(names); every label file has its image and every image its label
    file; no image is in two splits. Returns each split's image stems."""
    data = yaml.safe_load((root / "data.yaml").read_text())
    names = data["names"]
    if isinstance(names, dict):
        assert sorted(names) == list(range(len(names)))
    assert data["nc"] == len(names) > 0 and "path" not in data
    stems: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        if split not in data:
            continue
        images, labels = root / data[split], root / "labels" / split
        assert images == root / "images" / split and images.is_dir() and labels.is_dir()
        image_files = sorted(images.iterdir())
        label_files = sorted(labels.iterdir())
        assert all(p.suffix.lower() in IMAGE_SUFFIXES for p in image_files)
        assert all(p.suffix == ".txt" for p in label_files)
        assert [p.stem for p in image_files] == [p.stem for p in label_files]  # paired both ways
        for label in label_files:
            for line in label.read_text().splitlines():
                fields = line.split()
                assert len(fields) == 5, (label, line)
                assert fields[0].isdigit() and int(fields[0]) < len(names), (label, line)
                values = [float(v) for v in fields[1:]]
                assert all(0.0 <= v <= 1.0 for v in values), (label, line)
                assert values[2] > 0 and values[3] > 0, (label, line)
        stems[split] = {p.stem for p in image_files}
    for (a, first), (b, second) in itertools.combinations(stems.items(), 2):
        assert not first & second, f"images in both {a} and {b}: {sorted(first & second)[:3]}"
    return stems
