"""Frame level: one row per sampled frame, keyed by ``video_id, frame_index``; every
frame table also carries the frame's id, time, size and image path, so a stage never
needs another stage's table to find its pixels."""

import pyarrow as pa

from video_miner.ids import frame_id
from video_miner.tables import Level

FRAME = Level("frame", ("video_id", "frame_index"), (
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("frame_id", pa.string(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
))
# What a frame stage passes on to the next: the shared columns of its kept rows.
FRAME_COLUMNS = [f.name for f in FRAME.fields]
# The reason every frame stage gives for a frame whose image cannot be read.
UNREADABLE = "unreadable image"
# A frame's boxes, as detection writes them and the exports read them: xywh in pixels.
BOX_FIELDS = (
    pa.field("has_detections", pa.bool_(), nullable=False),
    pa.field("category", pa.list_(pa.string()), nullable=False),
    pa.field("score", pa.list_(pa.float32()), nullable=False),
    pa.field("bbox", pa.list_(pa.list_(pa.float32(), 4)), nullable=False),
)
BOX_COLUMNS = [f.name for f in BOX_FIELDS]

__all__ = ["BOX_COLUMNS", "BOX_FIELDS", "FRAME", "FRAME_COLUMNS", "UNREADABLE", "frame_id"]
