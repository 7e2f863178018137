"""The split frames as WebDataset tars for training (``export.webdataset``):
``results/export/webdataset/<split>/shard-XXXXXX.tar``, each frame as ``<key>.<ext>``
(its own image format; blurred in its privacy regions, as in the dataset export) and
``<key>.json`` (its metadata), at most ``max_frames`` frames per tar, in frame order.

The frames are read through :mod:`video_miner.framestore`, so loose and packed frames
(``extract.storage``) give the same tars; members have a fixed time, mode and owner, so
the same frames give the same bytes. The tars read back with ``tarfile`` or the
``webdataset`` package (``wds.WebDataset(".../train/shard-{000000..000009}.tar")``).
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from video_miner import framestore
from video_miner.blur import export_bytes
from video_miner.export import PROVENANCE, TEXT_COLUMNS, float_boxes, frame_objects
from video_miner.fsutil import atomic_dir, safe_name
from video_miner.provenance import PROVENANCE_FIELDS
from video_miner.yolo import yolo_stem


def sample_key(video_id: str, frame_index: int) -> str:
    """A frame's WebDataset key, ``<video>_<frame>``: WebDataset cuts a member's name at
    its first dot, so the key has none."""
    return yolo_stem(video_id, frame_index).replace(".", "_")


def sample_json(row, key: str, video: dict, regions: Sequence | None) -> dict:
    """A frame's ``<key>.json``: ids, time, split, size, where its video came from (and
    its provenance: :func:`video_miner.provenance.video_provenance`, merged into
    ``video``), its boxes and text when the run made them, the regions blurred when
    privacy is on."""
    sample = {
        "key": key,
        "frame_id": row.frame_id,
        "video_id": row.video_id,
        "frame_index": int(row.frame_index),
        "timestamp_s": float(row.timestamp_s),
        "split": row.split,
        "width": int(row.width),
        "height": int(row.height),
        "source": _plain(video.get("location")),
        **{k: _plain(video.get(k)) for k in PROVENANCE if k != "location"},
        **{k: _plain(video.get(k)) for k in PROVENANCE_FIELDS if k != "source"},
        **{c: _plain(getattr(row, c)) for c in TEXT_COLUMNS if hasattr(row, c)},
    }
    if hasattr(row, "category"):
        sample["objects"] = frame_objects(row)
    if regions is not None:
        sample["blurred_regions"] = float_boxes(regions)
    return sample


def write_frames_webdataset(out_dir: str | os.PathLike, frames: pd.DataFrame, videos: dict[str, dict],
                            max_frames: int, regions: dict[str, list] | None = None) -> dict:
    """``out_dir/<split>/shard-XXXXXX.tar`` from ``frames`` (the kept rows of the split
    table, with their text: :func:`video_miner.export.with_text`). ``videos``: download
    rows by id. ``regions``: with privacy on, the regions to blur per frame id. A split
    without frames has no folder. A frame that is gone or cannot be decoded is left out
    and returned with its reason (``skipped``); the others are written."""
    max_frames = max(1, int(max_frames))
    per_split, tars, skipped, keys = {}, {}, [], set()
    with atomic_dir(out_dir) as tmp:
        for split, rows in frames.sort_values(["video_id", "frame_index"]).groupby("split", sort=True):
            # Streamed: one frame in memory at a time, a new tar every max_frames frames.
            written, tar = 0, None
            try:
                for row in rows.itertuples(index=False):
                    blur = regions.get(row.frame_id, []) if regions is not None else None
                    try:
                        data = export_bytes(row.path, blur or [])
                    except (OSError, ValueError) as exc:  # deleted by hand, a broken tar, undecodable
                        skipped.append((row.path, f"{type(exc).__name__}: {exc}"))
                        continue
                    key = sample_key(row.video_id, row.frame_index)
                    while key in keys:  # two ids that sanitise alike: still one sample each
                        key += "_"
                    keys.add(key)
                    if written % max_frames == 0:
                        if tar is not None:
                            tar.close()
                        folder = Path(tmp, safe_name(split))
                        folder.mkdir(exist_ok=True)
                        tar = tarfile.open(folder / f"shard-{written // max_frames:06d}.tar", "w",
                                           format=tarfile.PAX_FORMAT)
                    sample = sample_json(row, key, videos.get(row.video_id, {}), blur)
                    framestore.add_member(tar, f"{key}{Path(row.path).suffix.lower()}", data)
                    framestore.add_member(tar, f"{key}.json", json.dumps(sample, ensure_ascii=False,
                                                                         sort_keys=True).encode())
                    written += 1
            finally:
                if tar is not None:
                    tar.close()
            per_split[split] = written
            tars[split] = -(-written // max_frames)
    return {"frames": sum(per_split.values()), "splits": per_split, "tars": tars, "skipped": skipped}


def _plain(value):
    """A JSON value of a table cell: None for missing, Python numbers and strings."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
