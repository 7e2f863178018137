"""Clip scores: flashes, burned-in text, motion and aesthetics, from one decode pass per
video.

The four clip stages after ``shots`` (``flash``, ``ocr``, ``motion``, ``aesthetic``, in
registry order) are one shard job (rule ``clip_scores``). Each video is decoded once, in
a worker process under the clip limits (:mod:`video_miner.workers`), and every decoded
frame of a clip feeds what the enabled stages need:

- its mean brightness (``flash``: the flash logic of :mod:`video_miner.flash`, which the
  shot stage uses too), read off the decoded luma plane;
- a motion value (``motion``: the decoder's motion vectors, or DIS optical flow);
- at a few positions per clip (the middles of equal parts), the frame itself: text
  detection (``ocr``, RapidOCR on the CPU) runs on them in the worker as soon as the
  clip ends; the frames the aesthetic model needs are written to the cache.

The job process then runs the aesthetic model (CLIP + the LAION head) on those frames,
batched across videos: one model on one device, and no worker process ever touches a
GPU. Nothing is decoded twice.

Filters apply in registry order and a stage sees only the clips the stages before it
kept (the table contract): text is detected only on clips without flashes, and the
aesthetic model runs only on clips that passed the three before it. With
``record_only`` a stage scores every clip it sees and keeps them all.

Scores are cached per video (``results/.cache/clip_scores/<shard>/``) with what they
depend on, not the thresholds: a changed threshold is decided again from the cached
scores, and only a video with a clip that now reaches a stage whose score it lacks is
decoded again. The records are written as videos finish, with the clips each stage
scored and kept: ``video-miner status`` reads them while the job runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.aesthetic import head_path, make_aesthetic, reduce_scores
from video_miner.clips import shard_videos
from video_miner.defaults import section_defaults
from video_miner.devices import Registry
from video_miner.extract import part_middles
from video_miner.fsutil import write_json_atomic
from video_miner.flash import flash_ratio, frame_brightness, luma_plane
from video_miner.video import DECODE_PASSES, VideoError, build_frame_index, count_decode_pass, open_video
from video_miner.workers import Isolation, Limits

log = logging.getLogger(__name__)

SCORE_STAGES = ("flash", "ocr", "motion", "aesthetic")  # registry order
_OCR_DEFAULTS, _MOTION_DEFAULTS = section_defaults("ocr"), section_defaults("motion")
# The aesthetic model's frames: shrunk so their shorter side is at most this (CLIP
# ViT-L/14 crops 224x224 from the shorter side resized to 224).
AESTHETIC_SIDE = 256
# Part of every cached record's key: raise it when a change to the scoring code changes
# scores, so caches made before it are not reused.
SCORING_VERSION = 1
# Written at the start of each job into its cache folder: the key its records must carry
# to count as this run's (what ``video-miner status`` reads), the videos and when.
JOB_INFO = "job.info"


# --- decisions: pure, on controlled scores ------------------------------------------------


@dataclass(frozen=True)
class ScoreRule:
    """How one stage decides on its score."""

    stage: str
    column: str  # the table column and the clip export's ``scores`` key
    limit_key: str  # the config key of its threshold
    keep_at_most: bool  # keep scores up to the limit (flash, text); else from it up (motion, aesthetics)
    missing: str  # the reason when a clip has no score

    def reason(self, value: float, limit: float) -> str:
        """Why a clip with ``value`` is dropped."""
        key = f"{self.stage}.{self.limit_key}"
        if self.stage == "flash":
            return f"flash frames are {value:.1%} of the clip (more than {key} {limit:g})"
        if self.stage == "ocr":
            return f"text covers {value:.1%} of a frame (more than {key} {limit:g})"
        if self.stage == "motion":
            return f"motion {value:.3g} is below {key} {limit:g}"
        return f"aesthetic score {value:.2f} is below {key} {limit:g}"


RULES: dict[str, ScoreRule] = {rule.stage: rule for rule in (
    ScoreRule("flash", "flash", "max_ratio", True, "no frames decoded in the clip"),
    ScoreRule("ocr", "text_area", "max_text_area", True, "no frame read for text detection"),
    ScoreRule("motion", "motion", "min", False, "no motion measured (fewer than two frames or no motion vectors)"),
    ScoreRule("aesthetic", "aesthetic", "min", False, "no frame scored"),
)}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class ScoreFilter:
    """One stage's decision: its rule, threshold and ``record_only``."""

    rule: ScoreRule
    limit: float
    record_only: bool = False

    @classmethod
    def from_config(cls, stage: str, section: dict, record_only: bool = False) -> "ScoreFilter":
        rule = RULES[stage]
        return cls(rule, float(section[rule.limit_key]), record_only or bool(section["record_only"]))

    def keeps(self, value) -> bool:
        """A clip with no score is never kept, unless the stage only records."""
        if self.record_only:
            return True
        if _missing(value):
            return False
        return value <= self.limit if self.rule.keep_at_most else value >= self.limit

    def decide(self, values: Sequence) -> tuple[np.ndarray, list[str]]:
        """``kept`` and ``reason`` for each score."""
        kept = np.array([self.keeps(v) for v in values], dtype=bool)
        reasons = ["" if k else (self.rule.missing if _missing(v) else self.rule.reason(float(v), self.limit))
                   for k, v in zip(kept, values)]
        return kept, reasons


def cascade(scores: pd.DataFrame, filters: Sequence[ScoreFilter]) -> dict[str, pd.DataFrame]:
    """Each stage's rows: the clips every stage before it kept, with its ``kept`` and
    ``reason`` (``scores``: one row per clip, a column per score)."""
    tables = {}
    reaching = scores
    for current in filters:
        kept, reasons = current.decide(reaching[current.rule.column].tolist())
        tables[current.rule.stage] = reaching.assign(kept=kept, reason=reasons)
        reaching = reaching[kept]
    return tables


def reached(scores: dict[str, float | None], filters: Sequence[ScoreFilter], stage: str) -> bool:
    """Whether a clip with ``scores`` reaches ``stage``: every stage before it keeps it."""
    for current in filters:
        if current.rule.stage == stage:
            return True
        if not current.keeps(scores.get(current.rule.column)):
            return False
    return False


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSettings:
    """The enabled score stages' config sections (defaults filled), in registry order,
    and the ``models`` section (the aesthetic model's device, dtype, batch size)."""

    sections: dict[str, dict]
    models: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, sections: dict[str, dict], models: dict | None = None) -> "ScoreSettings":
        return cls({s: dict(sections[s]) for s in SCORE_STAGES if s in sections}, dict(models or {}))

    @property
    def stages(self) -> list[str]:
        return list(self.sections)

    def filters(self, record_only: bool = False) -> list[ScoreFilter]:
        return [ScoreFilter.from_config(s, self.sections[s], record_only) for s in self.sections]

    def scoring(self) -> dict:
        """What cached scores depend on: the stages that run and how they score, never
        their thresholds. The aesthetic checkpoint and head count by their files."""
        keys = {"flash": (), "ocr": ("backend", "frames_per_clip", "max_side", "box_threshold"),
                "motion": ("backend", "flow_max_side"), "aesthetic": ("backend", "frames_per_clip")}
        scoring = {s: {k: self.sections[s][k] for k in keys[s]} for s in self.sections}
        scoring["version"] = SCORING_VERSION
        if "aesthetic" in self.sections:
            from video_miner.models import ModelSettings, model_key

            section = self.sections["aesthetic"]
            settings = ModelSettings.from_config(self.models)
            head = head_path(section["model"], section["head"])
            scoring["aesthetic"].update(model=model_key(section["model"], settings),
                                        head=[str(head), *_identity(head)] if head else None)
        return scoring


def _identity(path: Path) -> list:
    try:
        info = path.stat()
    except OSError:
        return []
    return [info.st_size, info.st_mtime_ns]


# --- motion backends ------------------------------------------------------------------------

MOTION_BACKENDS = Registry("motion backend")
_PICTURE_I, _PICTURE_P = int(av.video.frame.PictureType.I), int(av.video.frame.PictureType.P)


class MotionBackend:
    """The interface: ``configure(stream)`` before decoding, ``start()`` for one video's
    state, which takes each decoded frame and gives ``(value, reference)``: the
    displacement since the frame at position ``reference``, per frame between them,
    divided by width + height; None for a frame it cannot measure or need not
    (``measure`` false: the frame is in no clip)."""

    name = ""

    def configure(self, stream) -> None:
        pass

    def start(self) -> "MotionStream":  # pragma: no cover - per backend
        raise NotImplementedError


class MotionStream:
    def push(self, frame: av.VideoFrame, position: int, measure: bool = True
             ) -> tuple[float, int] | None:  # pragma: no cover
        raise NotImplementedError


@MOTION_BACKENDS.register("motion_vectors")
class MotionVectorBackend(MotionBackend):
    """The decoder's exported motion vectors (``export_mvs``): nearly free, as the
    decoder has them anyway. Only P-frames count: each block's vector (in pixels,
    ``motion / motion_scale``) weighted by the block's area, summed over the frame and
    divided by its area (blocks without a vector count as still, as in NeMo Curator),
    then by the display distance to the previous I- or P-frame, the frame it refers to
    (B-frame vectors span frames in both directions and would count motion twice over).
    FFmpeg exports vectors for H.264, MPEG-4 part 2 and MPEG-1/2 only."""

    name = "motion_vectors"
    CODECS = frozenset({"h264", "mpeg4", "mpeg2video", "mpeg1video", "h263", "h263p", "msmpeg4v3", "msmpeg4v2"})

    def configure(self, stream) -> None:
        flags = av.codec.context.Flags2
        stream.codec_context.flags2 |= getattr(flags, "export_mvs", None) or getattr(flags, "EXPORT_MVS")

    def start(self) -> "_VectorStream":
        return _VectorStream()


class _VectorStream(MotionStream):
    def __init__(self):
        self.reference: int | None = None  # position of the last I- or P-frame

    def push(self, frame, position, measure=True):
        kind = int(frame.pict_type)
        if kind not in (_PICTURE_I, _PICTURE_P):
            return None
        reference, self.reference = self.reference, position
        if not measure or kind != _PICTURE_P or reference is None or position <= reference:
            return None
        vectors = frame.side_data.get(av.sidedata.sidedata.Type.MOTION_VECTORS)
        width, height = frame.width, frame.height
        if vectors is None:
            return 0.0, reference  # no inter block moved (or none were coded)
        mv = vectors.to_ndarray()
        past = mv["source"] < 0
        shift = np.hypot(mv["motion_x"][past], mv["motion_y"][past]) / np.maximum(mv["motion_scale"][past], 1)
        area = mv["w"][past].astype(np.float64) * mv["h"][past]
        moved = float((shift * area).sum() / (width * height))
        return moved / (position - reference) / (width + height), reference


@MOTION_BACKENDS.register("dis")
class DisFlowBackend(MotionBackend):
    """OpenCV's DIS optical flow (ultrafast preset) between consecutive decoded frames,
    grey (the decoder's luma plane) shrunk to at most ``max_side`` pixels on the longer
    side; the mean flow magnitude divided by width + height of that size. Any codec."""

    name = "dis"

    def __init__(self, max_side: int = _MOTION_DEFAULTS["flow_max_side"]):
        self.max_side = max_side

    def start(self) -> "_FlowStream":
        return _FlowStream(self.max_side)


class _FlowStream(MotionStream):
    def __init__(self, max_side: int):
        import cv2

        cv2.setNumThreads(1)  # one per worker process: the job's cores are its workers
        self.cv2 = cv2
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.max_side = max_side
        self.previous: tuple[int, np.ndarray] | None = None

    def push(self, frame, position, measure=True):
        if not measure:
            return None
        scale = min(1.0, self.max_side / max(frame.width, frame.height))
        width, height = max(8, round(frame.width * scale)), max(8, round(frame.height * scale))
        luma = luma_plane(frame)  # the decoder's own luma plane shrunk by OpenCV: half swscale's cost
        grey = self.cv2.resize(luma, (width, height), interpolation=self.cv2.INTER_AREA) if luma is not None else \
            frame.to_ndarray(format="gray", width=width, height=height)
        previous, self.previous = self.previous, (position, grey)
        if previous is None or previous[1].shape != grey.shape or position <= previous[0]:
            return None
        flow = self.flow.calc(previous[1], grey, None)
        shift = float(np.hypot(flow[..., 0], flow[..., 1]).mean())
        return shift / (position - previous[0]) / (width + height), previous[0]


def motion_backend(section: dict, codec: str) -> MotionBackend:
    """The configured backend for a video of ``codec``: motion vectors fall back to DIS
    for codecs whose decoder exports none (VP9, AV1, HEVC)."""
    name = section["backend"]
    if name == "motion_vectors" and codec not in MotionVectorBackend.CODECS:
        name = "dis"
    cls = MOTION_BACKENDS.get(name)
    return cls(section["flow_max_side"]) if cls is DisFlowBackend else cls()


# --- text detection -----------------------------------------------------------------------------

OCR_BACKENDS = Registry("ocr backend")


MAX_LINE_HEIGHT = 0.5  # of the frame's height: a taller "text line" is a texture the detector took for one


def line_height(box: np.ndarray) -> float:
    """A detected text box's height: the mean length of its left and right sides (the
    detector gives the four corners clockwise from the top left)."""
    box = np.asarray(box, np.float64)
    return float((np.hypot(*(box[3] - box[0])) + np.hypot(*(box[2] - box[1]))) / 2)


def polygon_area(points: np.ndarray) -> float:
    """Area of a polygon (the shoelace formula), points in order."""
    x, y = np.asarray(points, np.float64).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


@OCR_BACKENDS.register("rapidocr")
class RapidOcrBackend:
    """RapidOCR (``rapidocr`` 3 with ``onnxruntime``): its PP-OCR detection model, which
    ships in the wheel, on frames shrunk to at most ``max_side`` on the longer side;
    boxes it scores below ``box_threshold`` are dropped. Detection only: boxes, no
    reading."""

    def __init__(self, max_side: int = _OCR_DEFAULTS["max_side"], box_threshold: float = _OCR_DEFAULTS["box_threshold"],
                 threads: int = 1):
        self.max_side = max_side
        self.box_threshold = box_threshold
        self.threads = threads
        self.engine = None

    def setup(self) -> "RapidOcrBackend":
        if self.engine is None:
            from rapidocr import RapidOCR

            started = time.perf_counter()
            self.engine = RapidOCR(params={
                "Global.use_cls": False, "Global.use_rec": False, "Global.log_level": "error",
                "Det.limit_type": "max", "Det.limit_side_len": self.max_side, "Det.box_thresh": self.box_threshold,
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
            log.info("loaded RapidOCR detection in %.1f s", time.perf_counter() - started)
        return self

    def boxes(self, rgb: np.ndarray) -> list[np.ndarray]:
        out = self.engine(rgb, use_det=True, use_cls=False, use_rec=False)
        return [] if out.boxes is None else [np.asarray(b, np.float64) for b in out.boxes]

    def text_area(self, rgb: np.ndarray) -> float:
        """The largest text box's area as a share of the frame's. A box taller than
        ``MAX_LINE_HEIGHT`` of the frame is no line of text: the detector marks some
        textures (wood grain) as one region the size of the frame."""
        height = rgb.shape[0]
        areas = [polygon_area(b) for b in self.boxes(rgb) if line_height(b) <= MAX_LINE_HEIGHT * height]
        return min(1.0, max(areas, default=0.0) / (rgb.shape[0] * rgb.shape[1]))


def make_ocr(section: dict, threads: int = 1) -> RapidOcrBackend:
    return OCR_BACKENDS.create(section["backend"], max_side=section["max_side"], box_threshold=section["box_threshold"],
                               threads=threads)


# --- one video: one decode pass ---------------------------------------------------------------


def _fit(width: int, height: int, longer: int | None = None, shorter: int | None = None) -> tuple[int, int]:
    """A size no larger than ``width x height`` whose longer side is at most ``longer``
    (or shorter side at most ``shorter``), aspect kept."""
    scale = 1.0
    if longer:
        scale = min(scale, longer / max(width, height))
    if shorter:
        scale = min(scale, shorter / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """The frame as displayed (rotation applied), RGB at ``size`` before rotating."""
    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    rotation = int(frame.rotation or 0) % 360
    if rotation:  # display matrix angles are counter-clockwise, as np.rot90 turns
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


@dataclass
class _ClipState:
    clip_id: str
    start: int
    end: int
    ocr_at: frozenset = frozenset()
    aesthetic_at: frozenset = frozenset()
    frames: int = 0
    luma: list = field(default_factory=list)
    motion: list = field(default_factory=list)
    ocr_frames: list = field(default_factory=list)
    aesthetic_frames: list = field(default_factory=list)  # (position, rgb)
    scores: dict = field(default_factory=dict)


class SampleFile:
    """The aesthetic model's frames of one video, appended raw (uint8) to one file in the
    cache: ``[clip_id, position, offset, height, width]`` per frame in ``index``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.index: list[list] = []
        self._handle = None

    def add(self, clip_id: str, position: int, rgb: np.ndarray) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "wb")
        offset = self._handle.tell()
        self._handle.write(np.ascontiguousarray(rgb, np.uint8).tobytes())
        self.index.append([clip_id, int(position), offset, int(rgb.shape[0]), int(rgb.shape[1])])

    def reset(self) -> None:
        """Start again, empty (the video is decoded again)."""
        self.close()
        self.index = []
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    @staticmethod
    def read(path: str | os.PathLike, index: Sequence[Sequence]) -> list[np.ndarray]:
        data = np.memmap(path, dtype=np.uint8, mode="r") if index else None
        return [np.array(data[o : o + h * w * 3]).reshape(h, w, 3) for _, _, o, h, w in index]


# Clips further apart than this many frames: seek to the next one's keyframe rather than
# decode the frames between (a calibration sample; a video's clips are otherwise contiguous).
SEEK_GAP = 250


class _SeekMissed(Exception):
    """A seek landed after the clip it was for."""


def _segments(states: list[_ClipState], gap: int | None) -> list[list[_ClipState]]:
    """Clips in order, in runs: a run ends where the next clip starts more than ``gap``
    frames after the run's last frame (never, without ``gap``)."""
    runs: list[list[_ClipState]] = []
    for state in sorted(states, key=lambda s: (s.start, s.end)):
        if runs and (gap is None or state.start - max(s.end for s in runs[-1]) <= gap):
            runs[-1].append(state)
        else:
            runs.append([state])
    return runs


def _frames(container, stream, stats: dict):
    """Decoded frames from where the demuxer is; a corrupt packet is counted and
    skipped, a demux error (a truncated file) ends the stream."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                stats["errors"] += 1
                continue
            for frame in frames:
                stats["decoded"] += 1
                yield frame
    except av.FFmpegError:
        stats["errors"] += 1


@dataclass
class VideoScorer:
    """What one worker process needs to score a video's clips: the enabled stages'
    settings and filters (for the cascade: text is only detected on clips that reach
    ``ocr``) and the text detector, made on first use (once per worker)."""

    settings: ScoreSettings
    filters: list[ScoreFilter]
    ocr: Callable[[], RapidOcrBackend] | None = None

    def score(self, path: str | os.PathLike, clips: Sequence[tuple[int, int, str]],
              samples: SampleFile | None = None) -> dict:
        """Score ``clips`` (``(start, end, clip_id)``, end exclusive) of the video at
        ``path`` with one decoder: the clips' frames are decoded once, and where the
        next clip starts more than ``SEEK_GAP`` frames after the last one ended (a
        calibration sample, clips dropped before) the decoder seeks to the keyframe
        before it instead of decoding the gap. Returns ``{"clips": {clip_id: {...scores,
        frames, motion_backend}}, "frames_decoded", "decode_errors", "seconds"}``; the
        aesthetic model's frames of the clips that reach it go to ``samples``. Raises
        :class:`VideoError`."""
        started = time.perf_counter()
        path = os.fspath(path)
        states = self._states(clips)
        if not states:
            return {"clips": {}, "frames_decoded": 0, "decode_errors": 0, "seconds": 0.0}
        index = build_frame_index(path)
        container, stream = open_video(path)
        count_decode_pass(path)
        try:
            stats, backend = self._decode(container, stream, index, states, samples, seek=index is not None)
        except _SeekMissed as exc:  # the demuxer's index disagrees with ours: decode straight through
            log.warning("%s: %s; decoding without seeking", path, exc)
            states = self._states(clips)
            if samples is not None:
                samples.reset()
            container, stream = open_video(path)
            count_decode_pass(path)
            stats, backend = self._decode(container, stream, index, states, samples, seek=False)
        if stats["decoded"] == 0:
            raise VideoError("no decodable video frames")
        if samples is not None:
            samples.close()
        return {"clips": {s.clip_id: {**s.scores, "frames": s.frames, "motion_backend": backend} for s in states},
                "frames_decoded": stats["decoded"], "decode_errors": stats["errors"],
                "seconds": round(time.perf_counter() - started, 3)}

    def _decode(self, container, stream, index, states: list[_ClipState], samples: SampleFile | None,
                seek: bool) -> tuple[dict, str | None]:
        sections = self.settings.sections
        motion = motion_backend(sections["motion"], stream.codec_context.name) if "motion" in sections else None
        if motion is not None:
            motion.configure(stream)
        stats = {"decoded": 0, "errors": 0}
        sizes: dict[str, tuple[int, int]] = {}
        with container:
            stream.thread_type = "AUTO"
            for segment in _segments(states, SEEK_GAP if seek else None):
                start = segment[0].start
                jump = None
                if seek and start > SEEK_GAP:
                    keys = index.pts[: start + 1][index.keyframe[: start + 1]]
                    jump = int(keys[-1]) if len(keys) else int(index.pts[0])
                    container.seek(jump, stream=stream, backward=True, any_frame=False)
                flow = motion.start() if motion is not None else None
                self._segment(container, stream, index, segment, flow, samples, stats, sizes, jump)
        return stats, motion.name if motion is not None else None

    def _segment(self, container, stream, index, states: list[_ClipState], flow, samples, stats: dict,
                 sizes: dict, jump: int | None) -> None:
        """Decode one run of clips (from wherever the decoder is, or from the keyframe
        ``jump`` it just sought) up to the run's last frame; finish every clip in it."""
        sections = self.settings.sections
        last = max(s.end for s in states)
        pending = sorted(states, key=lambda s: (s.start, s.end))
        active: list[_ClipState] = []
        landed = jump is None
        for frame in _frames(container, stream, stats):
            if index is None or frame.pts is None:
                position = stats["decoded"] - 1
            else:
                position = int(np.searchsorted(index.pts, frame.pts))
            if not landed:
                if frame.pts is None or frame.pts > index.pts[pending[0].start]:
                    raise _SeekMissed(f"a seek to pts {jump} landed at {frame.pts}")
                landed = True
            while pending and pending[0].start <= position:
                active.append(pending.pop(0))
            for state in [s for s in active if position >= s.end]:
                active.remove(state)
                self._finish(state, samples)
            measured = flow.push(frame, position, bool(active)) if flow is not None else None
            if not active:
                if not pending or position + 1 >= last:
                    break
                continue
            luma = frame_brightness(frame) if "flash" in sections else None
            for state in active:
                state.frames += 1
                if luma is not None:
                    state.luma.append(luma)
                if measured is not None and measured[1] >= state.start:
                    state.motion.append(measured[0])
                if position in state.ocr_at:
                    size = sizes.setdefault("ocr", _fit(frame.width, frame.height, longer=sections["ocr"]["max_side"]))
                    state.ocr_frames.append(_rgb(frame, size))
                if position in state.aesthetic_at:
                    size = sizes.setdefault("aesthetic", _fit(frame.width, frame.height, shorter=AESTHETIC_SIDE))
                    state.aesthetic_frames.append((position, _rgb(frame, size)))
        for state in active + pending:  # clips running to the video's end (or past what decoded)
            self._finish(state, samples)

    def _states(self, clips) -> list[_ClipState]:
        sections = self.settings.sections
        states = []
        for start, end, clip in clips:
            start, end = int(start), int(end)
            if end <= start:
                continue
            ocr_at = part_middles(start, end, sections["ocr"]["frames_per_clip"]) if "ocr" in sections else []
            aesthetic_at = part_middles(start, end, sections["aesthetic"]["frames_per_clip"]) \
                if "aesthetic" in sections else []
            states.append(_ClipState(clip, start, end, frozenset(ocr_at), frozenset(aesthetic_at)))
        return states

    def _finish(self, state: _ClipState, samples: SampleFile | None) -> None:
        """A clip has all its frames: its flash and motion scores; text detection on its
        frames if it reaches ``ocr``; its frames for the aesthetic model if it reaches
        that. Its frames are let go either way."""
        sections = self.settings.sections
        scores: dict[str, float | None] = {}
        if "flash" in sections:
            scores["flash"] = _number(flash_ratio(state.luma))
        if "motion" in sections:
            scores["motion"] = float(np.mean(state.motion)) if state.motion else None
        if "ocr" in sections:
            scores["text_area"] = None
            if state.ocr_frames and reached(scores, self.filters, "ocr"):
                detector = self.ocr()
                scores["text_area"] = max(detector.text_area(rgb) for rgb in state.ocr_frames)
        if "aesthetic" in sections and samples is not None and reached(scores, self.filters, "aesthetic"):
            for position, rgb in state.aesthetic_frames:
                samples.add(state.clip_id, position, rgb)
        state.scores = scores
        state.luma, state.motion, state.ocr_frames, state.aesthetic_frames = [], [], [], []


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


# --- one shard --------------------------------------------------------------------------------


def score_columns(stages: Sequence[str]) -> list[str]:
    return [RULES[s].column for s in stages]


def score_clips(clips: pd.DataFrame, videos: pd.DataFrame, cache_dir: str | os.PathLike, settings: ScoreSettings,
                filters: Sequence[ScoreFilter], workers: int = 1, limits: Limits | None = None,
                isolate: bool = True, threads: int = 1) -> tuple[pd.DataFrame, dict]:
    """Score ``clips`` (clip rows of the ``videos``: ``video_id``, ``file``,
    ``location``, ``filesize``, ``duration_s``) with the enabled stages, each video
    decoded once in a worker process under ``limits``, ``workers`` at a time; then the
    aesthetic model, in this process, on the frames of the clips that reach it.
    ``filters`` decide which clips reach which stage (all of them with ``record_only``).

    Returns one row per clip (the clip columns, each score, ``motion_backend``,
    ``aesthetic_frames``, ``video_ok`` and ``video_reason``) and the per-video outcomes.
    Each video's record is cached as soon as it is done."""
    from video_miner.shardjob import Lazy, VideoCache, cached_map

    limits = limits or Limits.from_config({})
    filters = list(filters)
    sections = settings.sections
    clips = clips.sort_values(["video_id", "start_frame", "clip_id"], kind="stable").reset_index(drop=True)
    files, durations, sizes, spans, sources = shard_videos(clips, videos)
    cache = VideoCache(cache_dir, settings.scoring())
    cache.prune(files)
    write_json_atomic(cache.root / JOB_INFO, {"key": cache.key, "videos": len(files), "clips": len(clips),
                                              "stages": settings.stages, "started_at": time.time()})
    ocr = Lazy(lambda: make_ocr(sections["ocr"]).setup()) if "ocr" in sections else None  # once per worker
    scorer = VideoScorer(settings, filters, ocr)

    def samples_path(video_id: str) -> Path:
        return cache.root / f"{video_id}.samples"

    def work(video_id: str) -> dict:
        samples = SampleFile(samples_path(video_id)) if "aesthetic" in sections else None
        opened = DECODE_PASSES[os.fspath(files[video_id])]
        try:
            scored = scorer.score(files[video_id], [tuple(s) for s in spans[video_id]], samples)
        except VideoError as exc:
            return {"video_id": video_id, "source": sources[video_id], "ok": False, "reason": str(exc)}
        record = {"video_id": video_id, "source": sources[video_id], "ok": True, "reason": None, **scored,
                  "samples": samples.index if samples is not None else [], "aesthetic": {},
                  "decode_passes": DECODE_PASSES[os.fspath(files[video_id])] - opened}
        if "aesthetic" not in sections:
            record.update(_progress(record, filters, sections))
        return record

    def reusable(record: dict) -> bool:
        if record["source"] != sources[record["video_id"]]:
            return False
        return not record["ok"] or _covers(record, filters, sections, samples_path(record["video_id"]))

    def failed(video_id: str, reason: str) -> dict:
        return {"video_id": video_id, "source": None, "ok": False, "reason": reason}

    isolation = Isolation("clip_scores", "decoder", memory_bytes=limits.memory_bytes,
                          timeout_s=lambda v: limits.clips_timeout_s(durations.get(v), sizes[v])) if isolate else None
    records = cached_map(cache, list(files), work, workers, "videos scored", reusable=reusable, failed=failed,
                         isolation=isolation)
    if "aesthetic" in sections:
        _aesthetic_pass(records, cache, filters, sections, settings, samples_path, threads)
    for video_id, record in records.items():  # reused under other thresholds: what status shows
        if record["ok"] and "finished_at" in record:
            counts = _progress(record, filters, sections)["progress"]
            if counts != record.get("progress"):
                cache.save(video_id, {**record, "progress": counts})
    return _score_rows(clips, records, sections), {v: _outcome(r) for v, r in records.items()}


def _covers(record: dict, filters: Sequence[ScoreFilter], sections: dict, samples: Path) -> bool:
    """A cached record serves these filters when every clip that reaches ``ocr`` has a
    text area, and every clip that reaches ``aesthetic`` has its frames' scores or its
    frames in the samples file."""
    waiting = {c for c, *_ in record.get("samples", [])} if samples.is_file() else set()
    for clip_id, scores in record["clips"].items():
        if "ocr" in sections and reached(scores, filters, "ocr") and scores.get("text_area") is None \
                and scores.get("frames"):
            return False
        if "aesthetic" in sections and reached(scores, filters, "aesthetic") and scores.get("frames") \
                and clip_id not in record.get("aesthetic", {}) and clip_id not in waiting:
            return False
    return True


def _aesthetic_pass(records: dict[str, dict], cache, filters, sections, settings: ScoreSettings, samples_path,
                    threads: int) -> None:
    """The aesthetic model on the cached frames of each video's clips that reach it,
    batched across videos; each record saved (and its frames file deleted) as soon as its
    video is scored."""
    from video_miner.logs import Progress
    from video_miner.shardjob import Lazy

    def make():
        import torch

        torch.set_num_threads(max(1, threads))
        return make_aesthetic(sections["aesthetic"], settings.models).setup()

    model = Lazy(make)
    from video_miner.models import ModelSettings

    todo = [r for r in records.values() if r["ok"] and "finished_at" not in r]
    progress = Progress("videos' frames scored by the aesthetic model", len(todo))
    batch_frames = max(64, 4 * ModelSettings.from_config(settings.models).batch_size)
    chunk: list[tuple[dict, list]] = []

    def run() -> None:
        frames = [f for _, part in chunk for f in part]
        values = model().score(frames) if frames else np.zeros(0)
        start = 0
        for record, part in chunk:
            index = record["samples"]
            for (clip_id, *_), value in zip(index, values[start : start + len(part)]):
                record["aesthetic"].setdefault(clip_id, []).append(round(float(value), 6))
            start += len(part)
            for clip_id, scores in record["clips"].items():  # reached it, but no frame of it decoded
                if scores.get("frames") and reached(scores, filters, "aesthetic"):
                    record["aesthetic"].setdefault(clip_id, [])
            record["samples"] = []
            record.update(_progress(record, filters, sections))
            cache.save(record["video_id"], record)
            samples_path(record["video_id"]).unlink(missing_ok=True)
            progress.update()
        chunk.clear()

    for record in todo:
        path = samples_path(record["video_id"])
        if not path.is_file():
            record["samples"] = []
        chunk.append((record, SampleFile.read(path, record["samples"])))
        if sum(len(p) for _, p in chunk) >= batch_frames:
            run()
    if chunk:
        run()


def _clip_scores(record: dict, sections: dict) -> dict[str, dict]:
    """Each clip's scores as the stages read them (the aesthetic frames reduced)."""
    out = {}
    for clip_id, scores in record["clips"].items():
        row = {k: scores.get(k) for k in ("flash", "text_area", "motion") if k in scores}
        if "aesthetic" in sections:
            values = record.get("aesthetic", {}).get(clip_id, [])
            row["aesthetic"] = _number(reduce_scores(values, sections["aesthetic"]["reduce"]))
        out[clip_id] = row
    return out


def _progress(record: dict, filters: Sequence[ScoreFilter], sections: dict) -> dict:
    """What ``video-miner status`` reads from a finished record: the clips each stage
    scored and kept, and when."""
    counts = {f.rule.stage: [0, 0] for f in filters}
    for scores in _clip_scores(record, sections).values():
        for current in filters:
            counts[current.rule.stage][0] += 1
            if not current.keeps(scores.get(current.rule.column)):
                break
            counts[current.rule.stage][1] += 1
    return {"progress": counts, "finished_at": time.time()}


def _outcome(record: dict) -> dict:
    return {"ok": record["ok"], "reason": record["reason"], "clips": len(record.get("clips", {})),
            **{k: record[k] for k in ("frames_decoded", "decode_errors", "decode_passes", "seconds") if k in record}}


def _score_rows(clips: pd.DataFrame, records: dict[str, dict], sections: dict) -> pd.DataFrame:
    rows = clips.copy()
    columns = score_columns(list(sections))
    values = {c: [] for c in columns}
    backends, ok, reasons, aesthetic_frames = [], [], [], []
    scored = {v: _clip_scores(r, sections) if r["ok"] else {} for v, r in records.items()}
    for video_id, clip in zip(rows["video_id"], rows["clip_id"]):
        record = records.get(video_id, {"ok": False, "reason": "not scored"})
        scores = scored.get(video_id, {}).get(clip, {})
        for column in columns:
            values[column].append(scores.get(column))
        detail = record.get("clips", {}).get(clip, {}) if record["ok"] else {}
        backends.append(detail.get("motion_backend"))
        aesthetic_frames.append(record.get("aesthetic", {}).get(clip, []) if record["ok"] else [])
        ok.append(bool(record["ok"]))
        reasons.append(record["reason"])
    for column in columns:
        rows[column] = pd.array([np.nan if v is None else v for v in values[column]], dtype="float64")
    rows["motion_backend"] = backends
    rows["aesthetic_frames"] = aesthetic_frames
    rows["video_ok"] = ok
    rows["video_reason"] = reasons
    return rows


# The score stages' own columns, after the clip level's shared ones and kept/reason.
STAGE_FIELDS: dict[str, tuple[pa.Field, ...]] = {
    "flash": (pa.field("flash", pa.float64()),),  # flash frames / frames of the clip
    "ocr": (pa.field("text_area", pa.float64()),),  # largest text box / frame area, over its frames
    "motion": (pa.field("motion", pa.float64()),  # displacement per frame / (width + height)
               pa.field("motion_backend", pa.string())),  # motion_vectors | dis
    "aesthetic": (pa.field("aesthetic", pa.float64()),  # min or mean of its frames' scores
                  pa.field("aesthetic_frames", pa.list_(pa.float64()))),
}


def stage_tables(scores: pd.DataFrame, filters: Sequence[ScoreFilter]) -> dict[str, pd.DataFrame]:
    """Each enabled stage's table rows from :func:`score_clips`'s: a clip whose video
    could not be scored is one row of the first stage, kept false with the video's
    reason; the rest go through :func:`cascade`."""
    if not filters:
        return {}
    failed = scores[~scores["video_ok"].astype(bool)]
    good = scores[scores["video_ok"].astype(bool)]
    tables = cascade(good, filters)
    first = filters[0].rule.stage
    failed_rows = failed.assign(kept=False, reason=failed["video_reason"].fillna("not scored"))
    tables[first] = pd.concat([tables[first], failed_rows]).sort_values(["video_id", "start_frame", "clip_id"],
                                                                        kind="stable")
    return tables


def stage_records(tables: dict[str, pd.DataFrame], outcomes: dict[str, dict]) -> dict[str, dict]:
    """Each stage's record for its table's metadata: clips, kept, and per-video outcomes
    (a video that failed to decode failed at the first stage only)."""
    records = {}
    for i, (name, table) in enumerate(tables.items()):
        per_video = {}
        for video_id, outcome in outcomes.items():
            rows = table[table["video_id"] == video_id]
            if not outcome["ok"] and i > 0:
                continue
            per_video[video_id] = {**outcome, "clips": len(rows), "clips_kept": int(rows["kept"].sum())} \
                if i == 0 else {"ok": True, "reason": None, "clips": len(rows), "clips_kept": int(rows["kept"].sum())}
        records[name] = {"clips": len(table), "kept": int(table["kept"].sum()), "video_outcomes": per_video}
    return records


def write_stage_tables(paths: dict[str, str | os.PathLike], tables: dict[str, pd.DataFrame],
                       records: dict[str, dict], settings: ScoreSettings) -> None:
    """Each stage's table, in registry order (each written after the one it reads)."""
    from video_miner.tables.clip import CLIP

    for name in settings.stages:
        table = CLIP.table(tables[name], *STAGE_FIELDS[name])
        CLIP.write(paths[name], table, {**records[name], "settings": settings.sections[name]})


# --- live progress -----------------------------------------------------------------------------


def clip_progress(cache_dirs: Sequence[str | os.PathLike], window_s: float = 60.0,
                  now: float | None = None) -> dict:
    """What the clip score jobs have done so far, from the per-video records they write
    as each video finishes (only records made with the settings of each folder's latest
    job count): videos done of those the jobs hold, clips each stage scored and kept, and
    clips per second over the last ``window_s`` seconds."""
    now = time.time() if now is None else now
    stages: dict[str, list[int]] = {}
    videos = done = recent = 0
    for folder in map(Path, cache_dirs):
        try:
            job = json.loads((folder / JOB_INFO).read_text())
        except (OSError, ValueError):
            continue
        videos += int(job.get("videos", 0))
        for path in folder.glob("*.json"):
            try:
                stored = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now
            record = stored.get("record") or {}
            if stored.get("key") != job.get("key") or "finished_at" not in record:
                continue
            done += 1
            for name, (scored, kept) in record.get("progress", {}).items():
                counts = stages.setdefault(name, [0, 0])
                counts[0] += scored
                counts[1] += kept
            if now - record["finished_at"] <= window_s:
                recent += max((c[0] for c in record.get("progress", {}).values()), default=0)  # the first stage's
    order = {s: i for i, s in enumerate(SCORE_STAGES)}
    return {"videos": videos, "videos_done": done,
            "stages": {s: {"scored": c[0], "kept": c[1]} for s, c in sorted(stages.items(), key=lambda i: order[i[0]])},
            "clips_per_s": recent / window_s}


# --- the shard job and calibration ------------------------------------------------------------


def clip_scores_shard(clips: pd.DataFrame, videos: pd.DataFrame, cache_dir: str | os.PathLike,
                      settings: ScoreSettings, workers: int = 1, limits: Limits | None = None, threads: int = 1,
                      isolate: bool = True) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """Score a shard's kept clips and decide: each enabled stage's table rows and record."""
    filters = settings.filters()
    scores, outcomes = score_clips(clips, videos, cache_dir, settings, filters, workers, limits, isolate, threads)
    tables = stage_tables(scores, filters)
    return tables, stage_records(tables, outcomes)


def calibration_sample(clips: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """``size`` clips drawn at random (seeded) from ``clips``, in clip order; the same
    clips for the same clips and seed, however the shards' tables are listed."""
    ordered = clips.sort_values(["video_id", "start_frame", "clip_id"], kind="stable").reset_index(drop=True)
    chosen = np.random.default_rng(seed).choice(len(ordered), size=min(size, len(ordered)), replace=False)
    return ordered.iloc[np.sort(chosen)].reset_index(drop=True)


def suggest_threshold(values: np.ndarray, rule: ScoreRule, keep_rate: float) -> float:
    """The threshold that keeps about ``keep_rate`` of ``values``: their ``keep_rate``
    quantile for a maximum (flash, text area), their ``1 - keep_rate`` quantile for a
    minimum (motion, aesthetics)."""
    return float(np.quantile(values, keep_rate if rule.keep_at_most else 1 - keep_rate))


def calibrate(scores: pd.DataFrame, settings: ScoreSettings, quantiles: Sequence[float], keep_rate: float) -> dict:
    """From the sample's scores (every stage scored every clip, nothing dropped): each
    score's quantiles; each filter's suggested threshold alone (``keep_rate`` of the
    clips it scored) and the share of the sample it keeps; the share the suggestions keep
    together, and the same for the configured thresholds."""
    good = scores[scores["video_ok"].astype(bool)]
    result: dict = {"clips": len(scores), "clips_scored": len(good),
                    "videos_failed": sorted(set(scores.loc[~scores["video_ok"].astype(bool), "video_id"])),
                    "keep_rate": keep_rate, "quantiles": {}, "suggested": {}}
    suggested_filters, configured_filters = [], []
    for current in settings.filters():
        column = current.rule.column
        values = good[column].to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        result["quantiles"][column] = {f"{q:g}": (float(np.quantile(finite, q)) if len(finite) else None)
                                       for q in quantiles}
        threshold = suggest_threshold(finite, current.rule, keep_rate) if len(finite) else None
        suggestion = ScoreFilter(current.rule, threshold) if threshold is not None else None
        configured = ScoreFilter(current.rule, current.limit)
        result["suggested"][current.rule.stage] = {
            "key": f"{current.rule.stage}.{current.rule.limit_key}", "score": column,
            "unscored": int(len(values) - len(finite)),
            "threshold": threshold, "keeps": _share(good, [suggestion]) if suggestion else None,
            "configured": current.limit, "configured_keeps": _share(good, [configured])}
        if suggestion:
            suggested_filters.append(suggestion)
        configured_filters.append(configured)
    result["joint_keeps"] = _share(good, suggested_filters)
    result["configured_joint_keeps"] = _share(good, configured_filters)
    return result


def _share(scores: pd.DataFrame, filters: Sequence[ScoreFilter]) -> float | None:
    if len(scores) == 0:
        return None
    kept = np.ones(len(scores), dtype=bool)
    for current in filters:
        kept &= current.decide(scores[current.rule.column].tolist())[0]
    return round(float(kept.mean()), 6)


def plot_calibration(path: str | os.PathLike, scores: pd.DataFrame, result: dict) -> None:
    """One histogram per score, the configured threshold dashed and the suggested one
    solid (the Snakemake report's Calibration section)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from video_miner.fsutil import atomic_path

    stages = list(result["suggested"])
    fig, axes = plt.subplots(len(stages) or 1, 1, figsize=(6, 2.2 * max(1, len(stages))), squeeze=False,
                             layout="constrained")
    good = scores[scores["video_ok"].astype(bool)]
    for ax, name in zip(axes[:, 0], stages):
        info = result["suggested"][name]
        values = good[info["score"]].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=30, color="#4477aa")
        ax.axvline(info["configured"], color="#cc6677", linestyle="--", label=f"configured {info['configured']:g}")
        if info["threshold"] is not None:
            ax.axvline(info["threshold"], color="#228833", label=f"suggested {info['threshold']:.3g}")
        ax.set_xlabel(f"scores.{info['score']} ({len(values)} clips)")
        ax.set_ylabel("clips")
        ax.legend(fontsize="small")
    if not stages:
        axes[0, 0].text(0.5, 0.5, "no score stage enabled", ha="center", va="center")
    axes[0, 0].set_title(f"Clip scores on a sample of {result['clips']} clips")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


CALIBRATION_FIELDS = (
    *(pa.field(RULES[s].column, pa.float64()) for s in SCORE_STAGES),
    pa.field("motion_backend", pa.string()),
    pa.field("aesthetic_frames", pa.list_(pa.float64())),
)


def write_calibration(out: dict[str, str | os.PathLike], scores: pd.DataFrame, result: dict,
                      settings: ScoreSettings) -> None:
    """``quantiles.json``, the raw scores as parquet (one row per sampled clip: kept is
    whether its video could be scored, reason why not) and the histograms."""
    from video_miner.tables.clip import CLIP

    rows = scores.assign(kept=scores["video_ok"].astype(bool), reason=scores["video_reason"].fillna(""))
    for column in score_columns(SCORE_STAGES):
        if column not in rows:
            rows[column] = np.nan
    CLIP.write(out["scores"], CLIP.table(rows, *CALIBRATION_FIELDS), {"settings": settings.sections})
    write_json_atomic(out["quantiles"], result)
    plot_calibration(out["histograms"], scores, result)
