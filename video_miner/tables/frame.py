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
# Points a backend gives when asked (Moondream's /point): never boxes, and never counted
# as detections; pixels of the frame. Written by detection, passed on by the later stages.
POINT = pa.struct([pa.field("category", pa.string()), pa.field("x", pa.float32()), pa.field("y", pa.float32())])
POINTS_FIELD = pa.field("points", pa.list_(POINT), nullable=False)
# One mask per box (segment): COCO RLE of the whole frame (``counts`` as a string, size
# = the frame's height, width) and its area in pixels, in the order of ``bbox``.
MASK_FIELDS = (
    pa.field("segmentation", pa.list_(pa.string()), nullable=False),
    pa.field("mask_area", pa.list_(pa.float32()), nullable=False),
)
# Everything a box stage hands on and the exports read: boxes, then points and masks
# where the run has them.
ANNOTATION_FIELDS = (*BOX_FIELDS, POINTS_FIELD, *MASK_FIELDS)
ANNOTATION_COLUMNS = [f.name for f in ANNOTATION_FIELDS]


def annotation_fields(columns) -> list[pa.Field]:
    """The annotation fields among ``columns``, in their order."""
    present = set(columns)
    return [f for f in ANNOTATION_FIELDS if f.name in present]


__all__ = ["ANNOTATION_COLUMNS", "ANNOTATION_FIELDS", "BOX_COLUMNS", "BOX_FIELDS", "FRAME", "FRAME_COLUMNS",
           "MASK_FIELDS", "POINTS_FIELD", "UNREADABLE", "annotation_fields", "frame_id"]
