"""Frame extraction with PyAV: interval, time and keyframe sampling.

Frame numbers and timestamps come from the demuxed frame index (see
:mod:`video_miner.video`), so they are exact whatever the frame rate does. Sparse
sampling seeks to the keyframe before a target whenever that skips decoding; keyframe
sampling tells the decoder to skip every other frame. Images are encoded and written on
worker threads (Pillow releases the GIL) while the next frames decode.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import av
import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, ImageOps

from video_miner.defaults import section_defaults
from video_miner.framestore import STORAGES, TAR_SUFFIX, TarPacker, address, read_bytes
from video_miner.fsutil import atomic_path
from video_miner.ids import frame_id
from video_miner.images import KIND, folder_identity, folder_images, image_key
from video_miner.imaging import shrink_to
from video_miner.video import FrameIndex, VideoError, build_frame_index, count_decode_pass, open_video
from video_miner.workers import Isolation, Limits

STRATEGIES = ("interval", "time", "keyframe", "scene")
IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_TIME_EPS = 1e-6  # seconds; absorbs float error in k * every_seconds
# Frames before a target at which decoding turns from reference frames only back to
# every frame: more than a decoder's reorder delay plus its threads' frames in flight.
_NONREF_MARGIN = 8

_DEFAULTS = section_defaults("extract")
# The extract table's own columns, after the frame level's shared ones; ``clip_id``: the
# clip a frame was taken for (strategy scene), else null.
# ``image``: the source image a frame of an image folder was read from, else null.
EXTRACT_FIELDS = (pa.field("keyframe", pa.bool_(), nullable=False), pa.field("clip_id", pa.string()),
                  pa.field("image", pa.string()))


@dataclass(frozen=True)
class ExtractOptions:
    strategy: str = _DEFAULTS["strategy"]
    every_n_frames: int = _DEFAULTS["every_n_frames"]
    every_seconds: float = _DEFAULTS["every_seconds"]
    frames_per_shot: int = _DEFAULTS["frames_per_shot"]
    max_frames: int | None = _DEFAULTS["max_frames"]
    image_format: str = _DEFAULTS["image_format"]
    quality: int = _DEFAULTS["quality"]
    max_side: int | None = _DEFAULTS["max_side"]
    threads: int = 2  # decoder and writer threads for one video; not a setting of the result
    # Where the shard's frames go (:mod:`video_miner.framestore`), not what they are.
    storage: str = _DEFAULTS["storage"]
    tar_mb: float = _DEFAULTS["tar_mb"]

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"extract.strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.storage not in STORAGES:
            raise ValueError(f"extract.storage must be one of {STORAGES}, got {self.storage!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"extract.image_format must be one of {tuple(IMAGE_FORMATS)}")
        if self.every_n_frames < 1 or self.every_seconds <= 0 or self.frames_per_shot < 1:
            raise ValueError("extract.every_n_frames and frames_per_shot must be >= 1 and extract.every_seconds > 0")


@dataclass
class ExtractResult:
    rows: list[dict]
    status: str  # "ok" or "failed"
    reason: str | None
    frames_in_video: int
    frames_decoded: int
    decode_errors: int
    seconds: float = 0.0


def clip_positions(clips: Sequence[tuple[int, int, str]], per_clip: int) -> dict[int, str]:
    """Strategy scene: for each clip ``(start, end, clip_id)`` (end exclusive), the frames
    at the middles of ``per_clip`` equal parts of it (one: the middle frame), with the
    clip each is for; a clip shorter than ``per_clip`` frames gives each of its frames."""
    chosen: dict[int, str] = {}
    for start, end, clip in clips:
        for position in part_middles(start, end, per_clip):
            chosen.setdefault(position, clip)
    return dict(sorted(chosen.items()))


def part_middles(start: int, end: int, parts: int) -> list[int]:
    """The frames at the middles of ``parts`` equal parts of ``start..end`` (end
    exclusive); every frame of a span shorter than ``parts``. How a clip's frames are
    chosen for ``strategy: scene`` and for the clip scores (OCR, aesthetics)."""
    length = end - start
    count = min(parts, max(length, 0))
    return [int(start + ((2 * k + 1) * length) // (2 * count)) for k in range(count)]


def select_positions(index: FrameIndex, options: ExtractOptions, clips: dict[int, str] | None = None) -> np.ndarray:
    """Display-order positions of the frames a strategy samples (``clips``: the positions
    :func:`clip_positions` chose, for strategy scene)."""
    n = len(index)
    if n == 0:
        return np.zeros(0, np.int64)
    if options.strategy == "scene":
        positions = np.asarray([p for p in (clips or {}) if p < n], np.int64)
    elif options.strategy == "interval":
        positions = np.arange(0, n, options.every_n_frames)
    elif options.strategy == "time":
        seconds = index.seconds(index.pts)
        targets = np.arange(0.0, seconds[-1] + options.every_seconds, options.every_seconds)
        positions = np.unique(np.searchsorted(seconds, targets - _TIME_EPS, side="left"))
        positions = positions[positions < n]
    else:
        positions = np.flatnonzero(index.keyframe)
    if options.max_frames:
        positions = positions[: options.max_frames]
    return positions.astype(np.int64)


class _FrameWriter:
    """Converts selected frames and writes them on a thread pool, in bounded flight."""

    def __init__(self, out_dir: Path, video_id: str, options: ExtractOptions, clips: dict[int, str] | None = None):
        self.clips = clips or {}
        self.out_dir = out_dir
        self.video_id = video_id
        self.options = options
        self.rows: list[dict] = []
        self._pool = ThreadPoolExecutor(max_workers=max(1, options.threads))
        self._pending: list[Future] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    def _target_size(self, frame: av.VideoFrame, rotation: int) -> tuple[int, int]:
        width, height = frame.width, frame.height
        max_side = self.options.max_side
        if max_side and max(width, height) > max_side:
            scale = max_side / max(width, height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        return width, height

    def add(self, frame: av.VideoFrame, frame_index: int, timestamp_s: float, keyframe: bool) -> None:
        rotation = int(frame.rotation or 0) % 360
        width, height = self._target_size(frame, rotation)
        out_width, out_height = (height, width) if rotation % 180 else (width, height)
        ext = self.options.image_format
        path = self.out_dir / f"{frame_index:08d}.{ext}"
        self.rows.append(
            {
                "video_id": self.video_id,
                "frame_index": int(frame_index),
                "frame_id": frame_id(self.video_id, int(frame_index)),
                "timestamp_s": round(float(timestamp_s), 6),
                "width": int(out_width),
                "height": int(out_height),
                "keyframe": bool(keyframe),
                "clip_id": self.clips.get(int(frame_index)),
                "path": path.as_posix(),
            }
        )
        if len(self._pending) >= 4 * max(1, self.options.threads):
            self._pending.pop(0).result()
        # Colour conversion runs on the pool too (swscale releases the GIL), so the
        # decoder goes on with the next frames meanwhile.
        self._pending.append(self._pool.submit(self._convert_and_save, frame, width, height, rotation, path))

    def _convert_and_save(self, frame: av.VideoFrame, width: int, height: int, rotation: int, path: Path) -> None:
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        if rotation:
            # Display matrix angles are counter-clockwise, as np.rot90 turns.
            rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
        self._save(rgb, path)

    def _save(self, rgb: np.ndarray, path: Path) -> None:
        fmt = IMAGE_FORMATS[self.options.image_format]
        kwargs = {"compress_level": 1} if fmt == "PNG" else {"quality": self.options.quality}
        with atomic_path(path, suffix=path.suffix) as tmp:
            Image.fromarray(rgb).save(tmp, format=fmt, **kwargs)

    def close(self) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown()


class _SeekUnreliable(Exception):
    """A seek landed after its target, or skipping non-reference frames lost a target:
    decode again without these shortcuts."""


@dataclass
class _DecodeStats:
    decoded: int = 0
    errors: int = 0


def _configure(stream, options: ExtractOptions, keyframes_only: bool) -> None:
    stream.thread_type = "AUTO"
    stream.thread_count = max(1, options.threads)
    if keyframes_only:
        stream.codec_context.skip_frame = "NONKEY"


def _frames(container, stream, stats: _DecodeStats):
    """Decoded frames; a corrupt packet is counted and skipped, a demux error (truncated
    file) ends the stream instead of raising."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                stats.errors += 1
                continue
            for frame in frames:
                stats.decoded += 1
                yield frame
    except av.FFmpegError:
        stats.errors += 1


def _decode_indexed(path: str, index: FrameIndex, positions: np.ndarray, writer: _FrameWriter,
                    options: ExtractOptions, seek: bool, stats: _DecodeStats) -> None:
    """Decode the frames at ``positions``. With ``seek``, jump to the keyframe before a
    target where that skips decoding, and far from a target decode reference frames
    only (non-reference frames there are never shown nor needed by others)."""
    targets = index.pts[positions]
    key_pts = index.pts[index.keyframe]
    # The keyframe at or before each target; targets before any keyframe start at frame 0.
    before = np.searchsorted(key_pts, targets, side="right") - 1
    seek_pts = np.where(before >= 0, key_pts[np.maximum(before, 0)], index.pts[0])
    seconds = index.seconds(targets)
    skip_nonref = seek and options.strategy != "keyframe"
    i = 0
    position_pts = None  # pts of the last decoded frame
    last_seek = None  # the keyframe pts of the last seek: a seek only ever moves forward
    # Every frame at most once or twice over (a re-seek re-decodes part of a GOP): more
    # means the loop is not making progress, so decode without the shortcuts instead.
    budget = 2 * len(index) + 2 * _NONREF_MARGIN
    container, stream = open_video(path)
    count_decode_pass(path)
    with container:
        _configure(stream, options, keyframes_only=options.strategy == "keyframe")
        context = stream.codec_context

        def decode_all_near_target(current_position: int) -> None:
            mode = "NONREF" if positions[i] - current_position > _NONREF_MARGIN else "DEFAULT"
            if context.skip_frame != mode:
                context.skip_frame = mode

        def seek_ahead() -> bool:
            # A seek can land on an earlier keyframe (VFR timestamps with B-frames confuse
            # the demuxer's index): then decode on from there rather than seek again.
            return bool(seek and seek_pts[i] > position_pts and (last_seek is None or seek_pts[i] > last_seek))

        while i < len(targets):
            just_seeked = position_pts is not None and seek_ahead()
            if just_seeked:
                last_seek = seek_pts[i]
                container.seek(int(seek_pts[i]), stream=stream, backward=True, any_frame=False)
            if skip_nonref:
                start = seek_pts[i] if just_seeked or position_pts is None else position_pts
                decode_all_near_target(int(np.searchsorted(index.pts, start)))
            for frame in _frames(container, stream, stats):
                if frame.pts is None or (just_seeked and frame.pts > targets[i]):
                    raise _SeekUnreliable(f"seek to {seek_pts[i]} landed at {frame.pts}")
                if seek and stats.decoded > budget:
                    raise _SeekUnreliable(f"{stats.decoded} frames decoded for {len(index)} in the video")
                just_seeked = False
                position_pts = frame.pts
                # Targets the decoder never produced (corrupt packets) are passed over;
                # while skipping frames that must not happen, so decode again without.
                while i < len(targets) and targets[i] < frame.pts:
                    if skip_nonref:
                        raise _SeekUnreliable(f"frame {positions[i]} not produced while skipping non-reference frames")
                    i += 1
                if i < len(targets) and targets[i] == frame.pts:
                    writer.add(frame, int(positions[i]), float(seconds[i]), bool(index.keyframe[positions[i]]))
                    i += 1
                if i >= len(targets) or seek_ahead():
                    break
                if skip_nonref:
                    decode_all_near_target(int(np.searchsorted(index.pts, frame.pts)))
            else:
                break  # end of stream


def _decode_sequential(path: str, writer: _FrameWriter, options: ExtractOptions,
                       select: Callable[[int, float, bool], bool], stats: _DecodeStats) -> None:
    """Decode every frame in order, for streams whose packets carry no timestamps."""
    container, stream = open_video(path)
    count_decode_pass(path)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    with container:
        _configure(stream, options, keyframes_only=False)
        first_time = None
        for frame in _frames(container, stream, stats):
            position = stats.decoded - 1
            if frame.time is not None:
                first_time = frame.time if first_time is None else first_time
                seconds = frame.time - first_time
            else:
                seconds = position / rate if rate else 0.0
            if select(position, seconds, bool(frame.key_frame)):
                writer.add(frame, position, seconds, bool(frame.key_frame))
            if options.max_frames and len(writer.rows) >= options.max_frames:
                break


def _sequential_selector(options: ExtractOptions, chosen: dict[int, str] | None = None
                         ) -> Callable[[int, float, bool], bool]:
    chosen = chosen or {}
    if options.strategy == "interval":
        return lambda position, seconds, key: position % options.every_n_frames == 0
    if options.strategy == "keyframe":
        return lambda position, seconds, key: key
    if options.strategy == "scene":
        return lambda position, seconds, key: position in chosen
    next_target = [0.0]

    def select(position: int, seconds: float, key: bool) -> bool:
        if seconds + _TIME_EPS >= next_target[0]:
            next_target[0] = (math.floor(seconds / options.every_seconds + _TIME_EPS) + 1) * options.every_seconds
            return True
        return False

    return select


def extract_video(path: str | os.PathLike, out_dir: str | os.PathLike, video_id: str,
                  options: ExtractOptions, clips: Sequence[tuple[int, int, str]] = ()) -> ExtractResult:
    """Sample frames of one video into ``out_dir`` (``clips``: its kept clips as
    ``(start, end, clip_id)``, for strategy scene). Never raises for a bad video: the
    result says ``failed`` with the reason, or ``ok`` with any decode errors counted."""
    started = time.perf_counter()
    path = str(path)
    chosen = clip_positions(clips, options.frames_per_shot) if options.strategy == "scene" else None
    writer = _FrameWriter(Path(out_dir), video_id, options, chosen)
    stats = _DecodeStats()
    frames_in_video = 0
    reason = None
    try:
        index = build_frame_index(path)
        if index is None:
            _decode_sequential(path, writer, options, _sequential_selector(options, chosen), stats)
            frames_in_video = stats.decoded
        else:
            frames_in_video = len(index)
            positions = select_positions(index, options, chosen)
            try:
                _decode_indexed(path, index, positions, writer, options, options.strategy != "keyframe", stats)
            except _SeekUnreliable:
                # Start over without seeking; frames already written are rewritten identically.
                writer.rows.clear()
                stats = _DecodeStats()
                _decode_indexed(path, index, positions, writer, options, False, stats)
        if frames_in_video == 0 or stats.decoded == 0:
            reason = "no decodable video frames"
    except VideoError as exc:
        reason = str(exc)
    finally:
        writer.close()
    return ExtractResult(writer.rows, "failed" if reason else "ok", reason, frames_in_video,
                         stats.decoded, stats.errors, round(time.perf_counter() - started, 3))


def _normalised(path: Path, max_side: int | None):
    """The image upright (EXIF orientation applied), in RGB, at most ``max_side`` pixels
    on its longer side: what extraction writes for a video frame too."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            # Transparency over white, not black: a cut-out object stays visible.
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba).convert("RGB")
            else:
                image = image.convert("RGB")
        else:
            image.load()
    return shrink_to(image, max_side)


def extract_images(folder: str | os.PathLike, out_dir: str | os.PathLike, video_id: str, options: ExtractOptions,
                   extensions: Iterable[str]) -> ExtractResult:
    """The images of one folder as frames in ``out_dir`` (``options``: the extraction's
    image format, quality and size). An image that cannot be read is a row that is not
    kept, with the reason; the folder fails only when no image is readable. Never raises."""
    started = time.perf_counter()
    folder, out_dir = Path(folder), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = folder_images(folder, extensions)
    fmt = IMAGE_FORMATS[options.image_format]
    kwargs = {"compress_level": 1} if fmt == "PNG" else {"quality": options.quality}
    rows, unreadable = [], 0
    for name in names:
        index = image_key(name)
        source = (folder / name).as_posix()
        row = {"video_id": video_id, "frame_index": index, "frame_id": frame_id(video_id, index),
               "timestamp_s": 0.0, "keyframe": True, "clip_id": None,
               "image": source.encode("utf-8", "backslashreplace").decode("utf-8")}
        try:
            if row["image"] != source:  # undecodable bytes in the name: no table can hold it
                raise ValueError("file name is not valid UTF-8")
            image = _normalised(folder / name, options.max_side)
            path = out_dir / f"{index:08d}.{options.image_format}"
            with atomic_path(path, suffix=path.suffix) as tmp:
                image.save(tmp, format=fmt, **kwargs)
        except Exception as exc:  # Pillow raises many kinds for a broken or odd file
            unreadable += 1
            reason = f"unreadable image: {type(exc).__name__}: {exc}"[:300]
            rows.append({**row, "width": 0, "height": 0, "path": "", "kept": False, "reason": reason})
            continue
        rows.append({**row, "width": image.width, "height": image.height, "path": path.as_posix()})
    readable = len(names) - unreadable
    reason = None if readable else ("no readable images" if names else "no images in the folder")
    return ExtractResult(rows, "failed" if reason else "ok", reason, len(names), readable, unreadable,
                         round(time.perf_counter() - started, 3))


def videos_to_extract(downloads: pd.DataFrame, probed: pd.DataFrame) -> pd.DataFrame:
    """The videos the probe kept, with their file and origin (the download's) and their
    duration (the probe's), in id order."""
    return probed[["video_id", "duration_s"]].merge(downloads, on="video_id", how="inner", validate="1:1")


def extract_shard(videos: pd.DataFrame, out_dir: str | os.PathLike, cache_dir: str | os.PathLike,
                  options: ExtractOptions, workers: int = 1, limits: Limits | None = None,
                  clips: pd.DataFrame | None = None, image_extensions: Sequence[str] = ()) -> tuple[pa.Table, dict]:
    """Sample frames of a shard's videos (``videos``: :func:`videos_to_extract`, with
    ``video_id``, ``file``, ``location``, ``filesize`` and ``duration_s``), ``workers``
    videos at a time in worker processes under ``limits`` (default: the config's), into
    ``out_dir/<video_id>/``. One row per frame; a video that cannot be decoded, hangs,
    crashes its decoder or runs out of memory has no rows and its reason in the record's
    per-video outcomes. Frames are written to the shard's cache first (a killed job keeps
    the videos it finished) and hard-linked into ``out_dir`` at the end; with ``storage``
    ``tar`` each video's frames are cached as one tar and the shard's are packed into
    ``out_dir/*.tar`` of about ``tar_mb`` MiB each (:mod:`video_miner.framestore`). Rows whose
    ``source`` is ``images`` are image folders: their images are read instead (an
    unreadable one is a row not kept, with its reason)."""
    from video_miner.shardjob import VideoCache, cached_map, link_file
    from video_miner.tables.frame import FRAME

    limits = limits or Limits.from_config({})
    durations = dict(zip(videos["video_id"], videos["duration_s"])) if "duration_s" in videos else {}
    sizes = dict(zip(videos["video_id"], videos["filesize"]))
    isolation = Isolation("extract", "decoder", memory_bytes=limits.memory_bytes,
                          timeout_s=lambda v: limits.extract_timeout_s(durations.get(v), sizes[v]))

    packed = options.storage == "tar"
    settings = {k: v for k, v in asdict(options).items() if k not in ("threads", "storage", "tar_mb")}
    # Only tar mode adds its key: a files run's cache and table stay as they always were.
    cache_settings = settings | ({"storage": "tar"} if packed else {})
    files = dict(zip(videos["video_id"], videos["file"]))
    # Strategy scene: each video's kept clips (from the clip table) are part of what its
    # frames are made from, so a video whose clips changed is extracted again.
    spans: dict[str, list] = {v: [] for v in files}
    if options.strategy == "scene" and clips is not None:
        for row in clips.itertuples(index=False):
            if row.video_id in spans:
                spans[row.video_id].append([int(row.start_frame), int(row.end_frame), row.clip_id])
    # A video is the same when it came from the same place with the same size: a
    # re-fetch of it (keep_videos: false) reuses its frames.
    sources = {v: [loc, int(size)] + ([spans[v]] if options.strategy == "scene" else []) for v, loc, size in
               zip(videos["video_id"], videos["location"], videos["filesize"])}
    folders = set(videos.loc[videos["source"] == KIND, "video_id"]) if "source" in videos else set()
    for video_id in folders:  # an image folder is the same when every image is
        sources[video_id] = [sources[video_id][0], folder_identity(files[video_id], image_extensions)]
    cache = VideoCache(cache_dir, cache_settings)
    cache.prune(files)

    def work(video_id: str) -> dict:
        frames_dir = cache.path(video_id)
        shutil.rmtree(frames_dir, ignore_errors=True)  # a killed attempt's partial frames
        if video_id in folders:
            result = extract_images(files[video_id], frames_dir, video_id, options, image_extensions)
        else:
            result = extract_video(files[video_id], frames_dir, video_id, options, [tuple(c) for c in spans[video_id]])
        outcome = {k: v for k, v in asdict(result).items() if k != "rows"}
        rows = [{**row, "path": Path(row["path"]).name} for row in result.rows]
        if packed:  # one file per video in the cache, not one per frame
            _pack_video(frames_dir, [row["path"] for row in rows if row.get("kept", True)])
        return {**outcome, "video_id": video_id, "source": sources[video_id], "ok": result.status == "ok", "rows": rows}

    def same_video(record: dict) -> bool:
        video_id = record["video_id"]
        # A packed video's cached tar deleted by hand: extracted again, not a failed job.
        return record["source"] == sources[video_id] and not (
            packed and record["ok"] and not _video_tar(cache.path(video_id)).is_file())

    def failed(video_id: str, reason: str) -> dict:
        return {"status": "failed", "reason": reason, "frames_in_video": 0, "frames_decoded": 0, "decode_errors": 0,
                "seconds": 0.0, "video_id": video_id, "source": None, "ok": False, "rows": []}

    records = cached_map(cache, list(files), work, workers, "videos extracted", reusable=same_video, failed=failed,
                         isolation=isolation)
    rows, outcomes = [], {}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with TarPacker(out_dir, int(options.tar_mb * 2**20)) if packed else nullcontext() as packer:
        for video_id, record in records.items():
            target = Path(out_dir, video_id)
            readable = [row for row in record["rows"] if row.get("kept", True)]
            if packed:
                paths = _repack(packer, cache.path(video_id), video_id, [row["path"] for row in readable])
            else:
                for row in readable:
                    link_file(cache.path(video_id) / row["path"], target / row["path"])
                paths = [(target / row["path"]).as_posix() for row in readable]
            rows += [{**row, "path": path, "kept": True} for row, path in zip(readable, paths, strict=True)]
            rows += [row for row in record["rows"] if not row.get("kept", True)]  # unreadable images, with the reason
            outcomes[video_id] = {k: v for k, v in record.items() if k not in ("rows", "video_id", "source")} | {
                "frames_extracted": len(readable)}
    table = FRAME.table(rows, *EXTRACT_FIELDS)
    return table, {"video_outcomes": outcomes, "frames": sum(r["kept"] for r in rows), "options": settings}


def _video_tar(frames_dir: Path) -> Path:
    return frames_dir.with_name(frames_dir.name + TAR_SUFFIX)


def _pack_video(frames_dir: Path, names: list[str]) -> None:
    """A video's extracted frames as one tar next to their folder, which goes."""
    # No index file: the cache's *.json are its records; a shard job scans it once.
    with TarPacker(frames_dir.parent, 0, name=_video_tar(frames_dir).name, index=False) as packer:
        for name in names:
            packer.add(name, (frames_dir / name).read_bytes())
    shutil.rmtree(frames_dir, ignore_errors=True)


def _repack(packer: TarPacker, frames_dir: Path, video_id: str, names: list[str]) -> list[str]:
    """A video's cached frames appended to the shard's tars as ``<video_id>/<name>``
    (WebDataset's key is everything before the name's first dot); their addresses."""
    tar = _video_tar(frames_dir)
    return [packer.add(f"{video_id}/{name}", read_bytes(address(tar, name))) for name in names]
