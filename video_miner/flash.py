"""Flashes: a short bright spike in a video (a camera flash, a strobe, a white frame)
that shot detectors mistake for cuts. Found from the mean brightness of each frame at
48x27, which the shot stage's decode pass already makes: the shot stage ignores cuts at
flashes, and the ``flash`` clip stage scores the share of a clip's frames in one."""

from __future__ import annotations

from typing import Sequence

import av
import numpy as np

SMALL = (48, 27)  # TransNetV2's input, and what brightness is measured on: width, height
# A flash: mean brightness (0-255) jumps up by more than this and back down within
# FLASH_MAX_FRAMES frames, to about where it was.
FLASH_JUMP = 60.0
FLASH_MAX_FRAMES = 3
_LUMA_WEIGHTS = np.asarray([0.299, 0.587, 0.114], np.float32)


def flash_spans(brightness: np.ndarray, jump: float = FLASH_JUMP, max_frames: int = FLASH_MAX_FRAMES) -> list[tuple[int, int]]:
    """Runs of frames ``(first, last)`` that are a flash: brightness jumps up by more than
    ``jump`` from the frame before, and within ``max_frames`` frames falls back by more
    than ``jump`` to within ``jump`` of where it was."""
    luma = np.asarray(brightness, np.float64)
    spans, i = [], 1
    while i < len(luma):
        if luma[i] - luma[i - 1] > jump:
            for last in range(i, min(i + max_frames, len(luma) - 1)):
                if luma[last] - luma[last + 1] > jump and abs(luma[last + 1] - luma[i - 1]) <= jump:
                    spans.append((i, last))
                    i = last
                    break
        i += 1
    return spans


def flash_ratio(brightness: Sequence[float] | np.ndarray) -> float:
    """The share of a clip's frames that are part of a flash (:func:`flash_spans` on the
    mean brightness of each of its frames): the ``flash`` stage's score."""
    luma = np.asarray(brightness, np.float64)
    if len(luma) == 0:
        return float("nan")
    return sum(last - first + 1 for first, last in flash_spans(luma)) / len(luma)


def brightness(small: np.ndarray) -> float:
    """Mean luma (0-255, BT.601 weights) of a small RGB frame: what flashes are found from."""
    return float((small.reshape(-1, 3).astype(np.float32) @ _LUMA_WEIGHTS).mean())


def small_frame(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame at 48x27 RGB (scaled in the decoder's swscale): TransNetV2's input
    and the brightness the flash guard and the ``flash`` stage read."""
    return frame.to_ndarray(format="rgb24", width=SMALL[0], height=SMALL[1])


# 8-bit pixel formats whose first plane is luma: limited range (16-235) unless marked full.
_LUMA_FORMATS = frozenset({"yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p", "yuv410p", "nv12", "nv21",
                           "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "gray"})
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def luma_plane(frame: av.VideoFrame) -> np.ndarray | None:
    """The decoded frame's 8-bit luma plane as an array (no copy, no conversion), or
    None for other pixel formats (10-bit, RGB)."""
    if frame.format.name not in _LUMA_FORMATS:
        return None
    plane = frame.planes[0]
    data = np.frombuffer(plane, np.uint8, count=plane.line_size * frame.height)
    return data.reshape(frame.height, plane.line_size)[:, : frame.width]


def frame_brightness(frame: av.VideoFrame) -> float:
    """Mean luma (0-255) of a decoded frame, read off its luma plane (every 4th pixel,
    limited range mapped to full): what :func:`brightness` measures on the 48x27 RGB
    frame, within 2 levels, at no conversion cost. Other pixel formats go through the
    48x27 frame."""
    luma = luma_plane(frame)
    if luma is None:
        return brightness(small_frame(frame))
    mean = float(luma[::4, ::4].mean())
    full = frame.format.name.startswith("yuvj") or frame.format.name == "gray" or \
        getattr(frame, "color_range", 0) == _FULL_RANGE
    return mean if full else min(255.0, max(0.0, (mean - 16) * 255 / 219))
