"""Clip level: one row per shot or window of a video, keyed by ``video_id, clip_id``
(``clip_id`` = ``{video_id}-{start_frame:06d}``, stable across reruns)."""

import pyarrow as pa

from video_miner.tables import Level

CLIP = Level("clip", ("video_id", "clip_id"), (
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("start_frame", pa.int64(), nullable=False),
    pa.field("end_frame", pa.int64(), nullable=False),  # exclusive
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("end_s", pa.float64(), nullable=False),
))


def clip_id(video_id: str, start_frame: int) -> str:
    return f"{video_id}-{start_frame:06d}"
