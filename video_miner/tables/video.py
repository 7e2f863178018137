"""Video level: one row per input video, keyed by ``video_id``."""

from __future__ import annotations

import os
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from video_miner.tables import Level

VIDEO = Level("video", ("video_id",), (pa.field("video_id", pa.string(), nullable=False),))
# A video-level stage's optional column: true where ``kept`` is false by a decision about
# a good video (outside the probe's filters, a copy of another), not because it failed.
# Such a video's status is ``rejected``, not ``failed``.
REJECTED = pa.field("rejected", pa.bool_())


def rejected_videos(paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """The videos a video-level stage rejected, with the reason."""
    paths = [p for p in paths if "rejected" in pq.read_schema(p).names]
    if not paths:
        return {}
    rows = VIDEO.read(paths, columns=["reason", "rejected"])
    rows = rows[rows["rejected"].fillna(False).astype(bool)]
    return dict(zip(rows["video_id"], rows["reason"]))


def kept_videos(paths: Sequence[str | os.PathLike]) -> list[str] | None:
    """The videos a run-wide video table keeps (video_dedup's: no duplicates), or None
    (every video) when there is no such table."""
    paths = list(paths)
    return VIDEO.read_kept(paths, columns=[])["video_id"].tolist() if paths else None
