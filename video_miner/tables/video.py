"""Video level: one row per input video, keyed by ``video_id``."""

from __future__ import annotations

import os
from typing import Sequence

import pyarrow as pa

from video_miner.tables import Level

VIDEO = Level("video", ("video_id",), (pa.field("video_id", pa.string(), nullable=False),))


def kept_videos(paths: Sequence[str | os.PathLike]) -> list[str] | None:
    """The videos a run-wide video table keeps (video_dedup's: no duplicates), or None
    (every video) when there is no such table."""
    paths = list(paths)
    return VIDEO.read_kept(paths, columns=[])["video_id"].tolist() if paths else None
