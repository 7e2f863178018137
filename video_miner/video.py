"""Opening and indexing videos with PyAV.

The frame index comes from one demux pass (packets only, no decoding): the display-order
timestamps and keyframe flags of every frame. With it, frame numbers and timestamps are
exact under variable frame rate and B-frames, and sparse sampling can seek to the
keyframe before each target instead of decoding everything.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


# Decode passes opened per file in this process (a demux pass, which decodes nothing, is
# not one): what the benchmarks and tests read to check the passes each video costs.
DECODE_PASSES: Counter = Counter()


def count_decode_pass(path: str | os.PathLike) -> None:
    """Record that a decoder is opened on ``path`` for one pass over (part of) it."""
    DECODE_PASSES[os.fspath(path)] += 1


class VideoError(Exception):
    """The file cannot be used as a video; the message is the reason recorded for it."""


def open_video(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and pick its first real video stream (cover art is not video)."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except OSError as exc:  # before FFmpegError: PyAV's file errors are both
        raise VideoError(f"cannot open file: {exc.strerror or exc}") from exc
    except av.FFmpegError as exc:
        raise VideoError(_what_it_is(path) or f"not a readable media file: {exc.strerror or exc}") from exc
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return container, stream
    container.close()
    raise VideoError("no video stream (audio-only or not a video)")


_SNIFF_BYTES = 4096
_HTML = re.compile(r"<(!doctype html|html|head|body|title|meta|script|div|p)[\s>]", re.IGNORECASE)


def _what_it_is(path: str | os.PathLike) -> str | None:
    """The reason for a file that is no media file, when its first bytes say what it is
    instead: empty, or text (an error or login page saved under a video's name)."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head:
        return "empty file"
    try:  # not final: the head may end inside a character
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head).lstrip()
    except UnicodeDecodeError:
        return None  # binary: a damaged or unsupported media file
    if text.startswith("<"):
        what = "an HTML page" if _HTML.search(text) else "an XML document"
    elif text.startswith(("{", "[")):
        what = "JSON"
    elif all(c.isprintable() or c in "\t\n\r\f" for c in text):
        what = "plain text"
    else:
        return None
    return f"not a video: the file is {what}"


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of all frames in display order, and which are keyframes."""

    pts: np.ndarray  # int64, sorted
    keyframe: np.ndarray  # bool, aligned with pts
    time_base: Fraction

    def __len__(self) -> int:
        return len(self.pts)

    def seconds(self, pts: np.ndarray | int) -> np.ndarray | float:
        """Seconds since the first frame."""
        return (np.asarray(pts) - self.pts[0]) * float(self.time_base)


def build_frame_index(path: str) -> FrameIndex | None:
    """Index the first video stream by demuxing its packets; None when packets carry no
    pts (raw streams, some AVI), in which case callers decode sequentially instead."""
    container, stream = open_video(path)
    pts_list: list[int] = []
    key_list: list[bool] = []
    with container:
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    return None
                pts_list.append(packet.pts)
                key_list.append(packet.is_keyframe)
        except av.FFmpegError:
            pass  # truncated file: index what was readable; the decoder stops there too
        pts = np.asarray(pts_list, dtype=np.int64)
        order = np.argsort(pts, kind="stable")
        return FrameIndex(pts[order], np.asarray(key_list, dtype=bool)[order], stream.time_base)
