"""What each video is, with PyAV only (no ffprobe process): container, codec, sizes,
rotation, frame rates, duration, frame count, bit rate and audio; the filters on them;
and what ``video_dedup`` groups by (a content hash and perceptual hashes of frames at
fixed fractions of the duration), computed in the same pass over the file.

One demux pass (packets, no decoding) gives the exact frame count, whether the frame
rate varies and the content hash; then the first frame (rotation, coded size) and the
hash frames are decoded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import av
import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.defaults import section_defaults
from video_miner.images import KIND as IMAGES
from video_miner.tables.video import REJECTED
from video_miner.video import VideoError, open_video
from video_miner.workers import Isolation, Limits

_FILTERS = section_defaults("probe", "filters")

# The probe table's own columns, after the video level's shared ones. One owner, one
# name: the download table keeps what the site said and the file; these are the file's.
PROBE_FIELDS = (
    pa.field("container", pa.string()),  # FFmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    pa.field("codec", pa.string()),  # h264, hevc, vp9, av1, ...
    pa.field("profile", pa.string()),
    pa.field("pix_fmt", pa.string()),
    pa.field("coded_width", pa.int32()),  # the decoder's frame size, padding included
    pa.field("coded_height", pa.int32()),
    pa.field("width", pa.int32()),  # as displayed: rotation applied (the extracted frames' size)
    pa.field("height", pa.int32()),
    pa.field("rotation", pa.int32()),  # degrees counter-clockwise from the display matrix
    pa.field("fps", pa.float64()),  # average: frames / duration
    pa.field("fps_nominal", pa.float64()),  # the stream's base rate (FFmpeg's r_frame_rate)
    pa.field("is_vfr", pa.bool_()),
    pa.field("duration_s", pa.float64()),
    pa.field("frame_count", pa.int64()),  # counted while demuxing, not the header's claim
    pa.field("bit_rate", pa.int64()),  # the whole file's, bits per second
    pa.field("has_audio", pa.bool_()),  # what was downloaded: download.audio false fetches video only
    pa.field("audio_codec", pa.string()),
    pa.field("audio_sample_rate", pa.int32()),
    pa.field("audio_channels", pa.int32()),
    pa.field("content_hash", pa.string()),  # sha256 of the video stream's packets (see content_hash)
    pa.field("phash", pa.binary()),  # 8 bytes per hash frame (64-bit pHash), null when not computed
    REJECTED,
)
PROBE_COLUMNS = [f.name for f in PROBE_FIELDS if f is not REJECTED]


@dataclass(frozen=True)
class ProbeFilters:
    """``probe.filters``: a video outside them is ``kept: false`` with the reason."""

    min_duration_s: float | None = _FILTERS["min_duration_s"]
    max_duration_s: float | None = _FILTERS["max_duration_s"]
    min_height: int | None = _FILTERS["min_height"]
    min_fps: float | None = _FILTERS["min_fps"]
    codecs: tuple[str, ...] = field(default=tuple(_FILTERS["codecs"]))
    require_audio: bool = _FILTERS["require_audio"]

    @classmethod
    def from_config(cls, section: dict) -> "ProbeFilters":
        values = {**section}
        if "codecs" in values:
            values["codecs"] = tuple(values["codecs"])
        return cls(**values)


def _unknown(what: str, key: str) -> str:
    return f"{what} unknown (probe.filters.{key} is set)"


def rejection(fields: dict, filters: ProbeFilters) -> str | None:
    """Why a probed video is rejected by ``filters``, or None. A value the file does not
    say cannot pass a filter on it."""
    duration, height, fps = fields.get("duration_s"), fields.get("height"), fields.get("fps")
    if filters.min_duration_s is not None or filters.max_duration_s is not None:
        if duration is None:
            return _unknown("duration", "min_duration_s" if filters.min_duration_s is not None else "max_duration_s")
        if filters.min_duration_s is not None and duration < filters.min_duration_s:
            return f"duration {duration:.2f} s is below probe.filters.min_duration_s ({filters.min_duration_s:g} s)"
        if filters.max_duration_s is not None and duration > filters.max_duration_s:
            return f"duration {duration:.2f} s is above probe.filters.max_duration_s ({filters.max_duration_s:g} s)"
    if filters.min_height is not None:
        if height is None:
            return _unknown("height", "min_height")
        if height < filters.min_height:
            return f"height {height} px is below probe.filters.min_height ({filters.min_height} px)"
    if filters.min_fps is not None:
        if fps is None:
            return _unknown("frame rate", "min_fps")
        if fps < filters.min_fps:
            return f"frame rate {fps:.2f} fps is below probe.filters.min_fps ({filters.min_fps:g} fps)"
    if filters.codecs and fields.get("codec") not in filters.codecs:
        return f"codec {fields.get('codec')} is not in probe.filters.codecs ({', '.join(filters.codecs)})"
    if filters.require_audio and not fields.get("has_audio"):
        return "no audio stream (probe.filters.require_audio)"
    return None


_DCT = np.cos(np.pi * (2 * np.arange(32)[None, :] + 1) * np.arange(32)[:, None] / 64)  # DCT-II basis, n=32


def phash_bits(image: Image.Image) -> np.ndarray:
    """64-bit perceptual hash: the 8x8 lowest frequencies of the DCT of a 32x32 grey
    image against their median (robust to rescaling and re-encoding)."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    return low > np.median(low)


def hash_positions(count: int) -> np.ndarray:
    """Fractions of the duration the hash frames are taken at: the middles of ``count``
    equal parts, so neither a fade-in nor the last frame is among them."""
    return (np.arange(count) + 0.5) / count


def _is_vfr(pts: np.ndarray) -> bool:
    """Whether frame durations vary by more than timestamp rounding (one tick, or 1%):
    a 30 fps WebM in milliseconds alternates 33 and 34 ms and is constant."""
    if len(pts) < 3:
        return False
    deltas = np.diff(pts)
    median = float(np.median(deltas))
    return bool(np.any(np.abs(deltas - median) > max(1.0, 0.01 * median)))


def _decode_at(container, stream, target_pts: int) -> av.VideoFrame | None:
    """The first frame at or after ``target_pts``, decoded from the keyframe before it."""
    try:
        container.seek(int(target_pts), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts >= target_pts:
                return frame
    except av.FFmpegError:
        return None
    return None


def _grey(frame: av.VideoFrame, rotation: int) -> Image.Image:
    grey = frame.to_ndarray(format="gray")
    if rotation:  # as extraction shows it: a phone video and its rotated re-encode hash alike
        grey = np.ascontiguousarray(np.rot90(grey, k=rotation // 90))
    return Image.fromarray(grey)


def probe_video(path: str | os.PathLike, hash_frames: int = 0) -> dict:
    """The technical metadata of one video, with ``hash_frames`` perceptual hashes
    (``phash``: 8 bytes each, None if any could not be decoded). Raises
    :class:`~video_miner.video.VideoError` for a file that is no usable video."""
    container, stream = open_video(str(path))
    with container:
        context = stream.codec_context
        # Packets of the video stream only, with the codec's setup bytes: the same video
        # stream hashes alike in MP4 and Matkroska, with or without an audio track.
        digest = hashlib.sha256(bytes(context.extradata or b""))
        pts, packets = [], 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                digest.update(bytes(packet))
                if packet.pts is not None:
                    pts.append(packet.pts)
        except av.FFmpegError:
            pass  # truncated: what was readable counts, as extraction decodes it
        if packets == 0:
            raise VideoError("no video frames in the file")
        pts_sorted = np.sort(np.asarray(pts, dtype=np.int64))
        time_base = float(stream.time_base) if stream.time_base else None

        first = _decode_at(container, stream, int(pts_sorted[0]) if len(pts_sorted) else 0)
        if first is None:
            raise VideoError("no decodable video frames")
        rotation = int(first.rotation or 0) % 360
        # Coded: as the decoder stores it (macroblock-aligned for H.264: 640x368 for 360p).
        coded_width, coded_height = context.coded_width or first.width, context.coded_height or first.height
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)

        duration = None
        if stream.duration is not None and time_base:
            duration = stream.duration * time_base
        elif container.duration is not None:
            duration = container.duration / av.time_base
        elif len(pts_sorted) > 1 and time_base:
            duration = (pts_sorted[-1] - pts_sorted[0]) * time_base * len(pts_sorted) / (len(pts_sorted) - 1)
        frame_count = len(pts_sorted) or packets
        average = stream.average_rate
        fps = float(average) if average else (frame_count / duration if duration else None)

        phash = None
        if hash_frames and len(pts_sorted):
            span = pts_sorted[-1] - pts_sorted[0]
            targets = pts_sorted[np.searchsorted(pts_sorted, pts_sorted[0] + hash_positions(hash_frames) * span)]
            bits = []
            for target in targets:
                frame = _decode_at(container, stream, int(target))
                if frame is None:
                    break
                bits.append(phash_bits(_grey(frame, rotation)))
            if len(bits) == hash_frames:
                phash = np.packbits(np.concatenate(bits)).tobytes()

        audio = next(iter(container.streams.audio), None)
        audio_context = audio.codec_context if audio is not None else None
        return {
            "container": container.format.name,
            "codec": context.name,
            "profile": context.profile,
            "pix_fmt": context.format.name if context.format else None,
            "coded_width": coded_width,
            "coded_height": coded_height,
            "width": width,
            "height": height,
            "rotation": rotation,
            "fps": round(fps, 6) if fps else None,
            "fps_nominal": round(float(stream.base_rate), 6) if stream.base_rate else None,
            "is_vfr": _is_vfr(pts_sorted),
            "duration_s": round(float(duration), 6) if duration is not None else None,
            "frame_count": int(frame_count),
            "bit_rate": int(container.bit_rate) if container.bit_rate else None,
            "has_audio": audio is not None,
            "audio_codec": audio_context.name if audio_context else None,
            "audio_sample_rate": int(audio_context.sample_rate) if audio_context and audio_context.sample_rate else None,
            "audio_channels": int(audio_context.channels) if audio_context and audio_context.channels else None,
            "content_hash": digest.hexdigest(),
            "phash": phash,
        }


def probe_shard(videos: pd.DataFrame, cache_dir: str | os.PathLike, filters: ProbeFilters, hash_frames: int,
                workers: int = 1, limits: Limits | None = None) -> tuple[pa.Table, dict]:
    """Probe a shard's videos (``videos``: the kept download rows with ``video_id``,
    ``file``, ``location``, ``filesize``), ``workers`` at a time in worker processes under
    ``limits``: one row per video, kept unless it cannot be probed (its reason) or
    ``filters`` reject it. Probes are cached per video; the filters apply afterwards, so
    changing them probes nothing again. Image folders (``source`` ``images``) have
    nothing to probe: kept as they are, outside the filters."""
    from video_miner.shardjob import VideoCache, cached_map
    from video_miner.tables.video import VIDEO

    limits = limits or Limits.from_config({})
    folders = set(videos.loc[videos["source"] == IMAGES, "video_id"]) if "source" in videos else set()
    videos = videos[~videos["video_id"].isin(folders)]
    files = dict(zip(videos["video_id"], videos["file"]))
    # The same video: from the same place with the same size (a re-fetch reuses its probe).
    sources = {v: [loc, int(size)] for v, loc, size in zip(videos["video_id"], videos["location"], videos["filesize"])}
    cache = VideoCache(cache_dir, {"hash_frames": hash_frames})
    cache.prune(files)

    def work(video_id: str) -> dict:
        try:
            fields = probe_video(files[video_id], hash_frames)
        except VideoError as exc:
            return {"video_id": video_id, "source": sources[video_id], "reason": str(exc)}
        if fields["phash"] is not None:  # JSON records: the bytes as hex
            fields["phash"] = fields["phash"].hex()
        return {"video_id": video_id, "source": sources[video_id], "reason": None, **fields}

    def same_video(record: dict) -> bool:
        return record["source"] == sources[record["video_id"]]

    def failed(video_id: str, reason: str) -> dict:
        return {"video_id": video_id, "reason": reason}

    isolation = Isolation("probe", "decoder", timeout_s=lambda video_id: limits.probe_s,
                          memory_bytes=limits.memory_bytes)
    records = cached_map(cache, list(files), work, workers, "videos probed", reusable=same_video, failed=failed,
                         isolation=isolation)
    rows = []
    for video_id, record in records.items():
        row = {key: record.get(key) for key in PROBE_COLUMNS}
        if row["phash"] is not None:
            row["phash"] = bytes.fromhex(row["phash"])
        rejected = None if record["reason"] else rejection(row, filters)
        reason = record["reason"] or rejected
        rows.append({"video_id": video_id, **row, "kept": reason is None, "reason": reason or "",
                     "rejected": rejected is not None})
    rows += [{"video_id": v, **dict.fromkeys(PROBE_COLUMNS), "kept": True, "reason": "", "rejected": False}
             for v in sorted(folders)]
    kept = sum(r["kept"] for r in rows)
    errors = sum(1 for r in records.values() if r["reason"])
    record = {"videos": len(rows), "kept": kept, "failed": errors, "rejected": len(rows) - kept - errors,
              "hash_frames": hash_frames}
    return VIDEO.table(rows, *PROBE_FIELDS), record
