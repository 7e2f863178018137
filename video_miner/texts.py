"""The text the captions and audio stages add, as the exports read it: the captions
tables (one row per frame or clip), the audio segments, and which segment a clip or a
frame gets. No model code here: the export jobs import it."""

from __future__ import annotations

import os
from typing import Sequence

import pandas as pd
import pyarrow as pa

from video_miner.tables import write_parquet

# The captions table: one row per item (a frame or a clip) the job was asked to caption.
CAPTION_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("target", pa.string(), nullable=False),  # frame | clip
    pa.field("frame_index", pa.int64()),  # frames
    pa.field("clip_id", pa.string()),  # clips
    pa.field("kept", pa.bool_(), nullable=False),  # captioned
    pa.field("reason", pa.string(), nullable=False),  # why not
    pa.field("caption", pa.string()),
    pa.field("model", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("cached", pa.bool_(), nullable=False),
])
SEGMENT_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("end_s", pa.float64(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("language", pa.string()),
])


def read_captions(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The rows of captions tables (frames and clips)."""
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, schema=CAPTION_SCHEMA) for p in paths]
    return (pa.concat_tables(tables) if tables else CAPTION_SCHEMA.empty_table()).to_pandas()


def clip_captions(captions: pd.DataFrame) -> dict[str, str]:
    """Each captioned clip's caption, by clip id."""
    made = captions[(captions["target"] == "clip") & captions["kept"].astype(bool)]
    return dict(zip(made["clip_id"], made["caption"]))


def write_segments(path: str | os.PathLike, segments: pd.DataFrame) -> None:
    write_parquet(path, pa.Table.from_pandas(segments[SEGMENT_SCHEMA.names], schema=SEGMENT_SCHEMA,
                                             preserve_index=False), {"segments": len(segments)})


def read_segments(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, schema=SEGMENT_SCHEMA) for p in paths]
    return pa.concat_tables(tables).to_pandas() if tables else SEGMENT_SCHEMA.empty_table().to_pandas()


def clip_transcripts(segments: pd.DataFrame, clips: pd.DataFrame) -> dict[str, str]:
    """Each clip's transcript (``clips``: ``video_id``, ``clip_id``, ``start_s``,
    ``end_s``): the texts of the segments of its video that overlap it (a segment that
    only touches its start or end does not), in time order. Clips without speech get none."""
    by_video = {v: part.sort_values("start_s") for v, part in segments.groupby("video_id", sort=False)}
    out = {}
    for video_id, clip, start, end in zip(clips["video_id"], clips["clip_id"], clips["start_s"], clips["end_s"]):
        part = by_video.get(video_id)
        if part is None:
            continue
        hit = part[(part["start_s"] < end) & (part["end_s"] > start)]
        if len(hit):
            out[clip] = " ".join(hit["text"])
    return out


def frame_transcripts(segments: pd.DataFrame, frames: pd.DataFrame) -> list[str | None]:
    """Each frame's transcript (``frames``: ``video_id``, ``timestamp_s``): the text of
    the segment covering its time (``start_s <= t < end_s``), or None."""
    by_video = {v: part.sort_values("start_s") for v, part in segments.groupby("video_id", sort=False)}
    out: list[str | None] = []
    for video_id, t in zip(frames["video_id"], frames["timestamp_s"]):
        part = by_video.get(video_id)
        hit = None if part is None else part[(part["start_s"] <= t) & (part["end_s"] > t)]
        out.append(" ".join(hit["text"]) if hit is not None and len(hit) else None)
    return out
