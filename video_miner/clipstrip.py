"""A picture of what the clip filters did: a kept clip and a dropped one, a few frames
of each with the clip's scores and the reason it was dropped (the report's Clips
section; the README's picture comes from the demo's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from video_miner.extract import part_middles
from video_miner.fsutil import atomic_path
from video_miner.video import build_frame_index, count_decode_pass, open_video

SCORE_STAGES = ("flash", "ocr", "motion", "aesthetic")


def pick_clips(clips: pd.DataFrame) -> list[pd.Series]:
    """A kept clip (the best aesthetic score, else the first) and a dropped one (by a score
    stage if any was, text first: it shows best), from the clip export."""
    picked = []
    kept = clips[clips["kept"].astype(bool)]
    if len(kept):
        order = kept["scores"].map(lambda s: dict(s or {}).get("aesthetic", 0.0))
        picked.append(kept.loc[order.idxmax()])
    dropped = clips[~clips["kept"].astype(bool)]
    by_score = dropped[dropped["reasons"].map(lambda r: any(str(x).split(":")[0] in SCORE_STAGES for x in r))]
    for stage in ("ocr", "flash", "motion", "aesthetic"):
        hit = by_score[by_score["reasons"].map(lambda r: any(str(x).startswith(f"{stage}:") for x in r))]
        if len(hit):
            picked.append(hit.iloc[0])
            break
    else:
        if len(dropped):
            picked.append(dropped.iloc[0])
    return picked


def clip_frames(path: str | os.PathLike, start: int, end: int, count: int, height: int = 108) -> list[np.ndarray]:
    """``count`` frames of the clip ``start..end`` (the middles of equal parts), RGB at
    ``height`` pixels high."""
    path = os.fspath(path)
    wanted = set(part_middles(start, end, count))
    index = build_frame_index(path)
    container, stream = open_video(path)
    count_decode_pass(path)
    frames = []
    with container:
        for position, frame in enumerate(container.decode(stream)):
            if index is not None and frame.pts is not None:
                position = int(np.searchsorted(index.pts, frame.pts))
            if position in wanted:
                width = max(2, round(frame.width * height / frame.height))
                frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
            if position >= end - 1 or len(frames) == len(wanted):
                break
    return frames


def _caption(row: pd.Series) -> list[str]:
    scores = dict(row["scores"] or {})
    line = "  ".join(f"{k} {v:.3g}" for k, v in scores.items()) or "no scores"
    head = f"{row['clip_id']}  {row['start_s']:.1f}-{row['end_s']:.1f} s"
    verdict = "KEPT" if row["kept"] else "DROPPED: " + "; ".join(row["reasons"])
    return [f"{verdict}", f"{head}   scores: {line}"]


def draw_strip(rows: Sequence[tuple[list[str], list[np.ndarray]]], width: int | None = None) -> Image.Image:
    """Rows of frames, each under its caption lines."""
    font = ImageFont.load_default(size=14)
    pad, line = 6, 18
    widths = [sum(f.shape[1] for f in frames) + pad * (len(frames) + 1) for _, frames in rows]
    width = width or max([640, *widths])
    heights = [len(text) * line + pad + (frames[0].shape[0] if frames else 0) + pad for text, frames in rows]
    canvas = Image.new("RGB", (width, max(40, sum(heights))), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (text, frames), height in zip(rows, heights):
        for i, words in enumerate(text):
            draw.text((pad, y + pad // 2 + i * line), words, fill=(20, 20, 20) if i else (150, 20, 20)
                      if words.startswith("DROPPED") else (20, 110, 20), font=font)
        x = pad
        for frame in frames:
            canvas.paste(Image.fromarray(frame), (x, y + len(text) * line + pad))
            x += frame.shape[1] + pad
        y += height
    return canvas


def write_clip_strip(out: str | os.PathLike, clips: pd.DataFrame, files: dict[str, str], frames: int = 4) -> int:
    """The strip of :func:`pick_clips`'s clips as a JPEG; returns how many clips it shows."""
    rows = []
    for row in pick_clips(clips):
        path = files.get(row["video_id"])
        pictures = clip_frames(path, int(row["start_frame"]), int(row["end_frame"]), frames) if path else []
        rows.append((_caption(row), pictures))
    image = draw_strip(rows or [(["no clips to show"], [])])
    with atomic_path(Path(out), suffix=".jpg") as tmp:
        image.save(tmp, quality=90)
    return len(rows)
