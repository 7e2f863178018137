"""Speech to text: each video's audio decoded with PyAV (16 kHz mono), transcribed by
Whisper through transformers in windows of ``chunk_s`` seconds (Whisper hears 30 s at a
time; each window is one segment), the language given (``audio.language``) or detected
once per video. The segments table (``results/audio/segments/{shard}.parquet``) gives
each clip a ``transcript`` (the text of the segments it overlaps) and each dataset frame
the text of the segment covering its time (:func:`clip_transcripts`,
:func:`frame_transcripts`)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.texts import SEGMENT_SCHEMA  # noqa: F401 - the segments' columns, with the stage
from video_miner.tables.video import VIDEO

log = logging.getLogger(__name__)

_DEFAULTS = section_defaults("audio")
SAMPLE_RATE = 16000
# The audio stage's own columns in its video table.
AUDIO_FIELDS = (
    pa.field("has_audio", pa.bool_()),
    pa.field("audio_s", pa.float64()),
    pa.field("language", pa.string()),
    pa.field("segments", pa.int32()),
)
NO_AUDIO = "no audio track"


@dataclass(frozen=True)
class AudioSettings:
    model: str = _DEFAULTS["model"]
    language: str | None = _DEFAULTS["language"]
    chunk_s: float = _DEFAULTS["chunk_s"]
    max_new_tokens: int = _DEFAULTS["max_new_tokens"]

    @classmethod
    def from_config(cls, section: dict) -> "AudioSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


def decode_audio(path: str) -> np.ndarray | None:
    """The first audio stream as float32 mono samples at 16 kHz, or None when the file
    has no audio stream."""
    import av

    with av.open(path) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def windows(samples: int, chunk_s: float) -> list[tuple[int, int]]:
    """``[start, end)`` sample ranges of ``chunk_s`` seconds covering ``samples``."""
    step = max(1, int(round(chunk_s * SAMPLE_RATE)))
    return [(s, min(samples, s + step)) for s in range(0, samples, step)]


class WhisperTranscriber:
    """A Whisper checkpoint through the shared loader. One video at a time (the model
    is shared by the job's threads under a lock)."""

    def __init__(self, settings: AudioSettings, model_settings=None):
        from video_miner.models import ModelSettings, load_hf_model

        self.settings = settings
        self.loaded = load_hf_model(settings.model, model_settings or ModelSettings(),
                                    "AutoModelForSpeechSeq2Seq", "AutoProcessor", role="transcriber")
        lang_to_id = getattr(self.loaded.model.generation_config, "lang_to_id", None) or {}
        self._languages = {i: token.strip("<|>") for token, i in lang_to_id.items()}
        self._lock = threading.Lock()

    def _features(self, pcm: np.ndarray):
        features = self.loaded.processor(pcm, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        return features.to(self.loaded.device, self.loaded.dtype)

    def detect_language(self, pcm: np.ndarray) -> str | None:
        """The language Whisper hears in ``pcm`` (its first window), or None for an
        English-only checkpoint."""
        import torch

        if not self._languages:
            return None
        with self._lock, torch.inference_mode():
            token = self.loaded.model.detect_language(self._features(pcm))
        return self._languages.get(int(token.reshape(-1)[0]))

    def transcribe(self, pcm: np.ndarray) -> list[dict]:
        """Segments (``start_s``, ``end_s``, ``text``, ``language``), one per window with speech."""
        import torch

        language = self.settings.language
        spans = windows(len(pcm), self.settings.chunk_s)
        if language is None and spans:
            language = self.detect_language(pcm[spans[0][0]:spans[0][1]])
        options = {"max_new_tokens": self.settings.max_new_tokens}
        if self._languages:
            options.update(task="transcribe", language=language)
        segments = []
        for start, end in spans:
            with self._lock, torch.inference_mode():
                ids = self.loaded.model.generate(self._features(pcm[start:end]), **options)
            text = " ".join(self.loaded.processor.batch_decode(ids, skip_special_tokens=True)[0].split())
            if text:
                segments.append({"start_s": start / SAMPLE_RATE, "end_s": end / SAMPLE_RATE, "text": text,
                                 "language": language})
        return segments


def decode_isolation(limits, durations: dict[str, float], sizes: dict[str, int]):
    """Each video's audio decoded in a worker process under the extraction limits (a
    whole-video decode, as extraction is): a file that hangs or crashes the decoder costs
    only its video (``durations`` and ``sizes`` of the videos give their time limits)."""
    from video_miner.workers import Isolation

    return Isolation("audio", "decoder", memory_bytes=limits.memory_bytes,
                     timeout_s=lambda v: limits.extract_timeout_s(durations.get(v), sizes.get(v)))


def transcribe_videos(files: dict[str, str], cache_dir: str | os.PathLike, settings: AudioSettings, make,
                      sources: dict[str, list] | None = None, isolation=None) -> tuple[pa.Table, pd.DataFrame, dict]:
    """Transcribe each video of ``files`` (video id -> file), resumable per video (a
    record per video in ``cache_dir``; ``sources``: what each file is, so a new download
    is heard again). The sound is decoded in a worker process under ``isolation`` (see
    :func:`decode_isolation`) and handed over in a file; the model stays in this process.
    A video without an audio track is kept with no segments; one that cannot be decoded
    is not kept, with the reason. Returns the stage's video table, the segments and the
    job's record."""
    from dataclasses import asdict

    from video_miner.logs import Progress
    from video_miner.shardjob import Lazy, VideoCache
    from video_miner.workers import each_video

    cache = VideoCache(cache_dir, {**asdict(settings), "format": 1})
    cache.prune(files)
    transcriber = Lazy(make)
    sources = sources or {}
    records = {v: r for v in files if (r := cache.load(v)) is not None and r.get("source") == sources.get(v)}
    todo = [v for v in files if v not in records]
    if records:
        log.info("%d of %d videos already done in an earlier run", len(records), len(files))

    def pcm_path(video_id: str):
        return cache.root / f"{video_id}.pcm.npy"

    def decode(video_id: str) -> dict:  # in the worker: only the decoder, never the model
        pcm = decode_audio(files[video_id])
        if pcm is not None:
            np.save(pcm_path(video_id), pcm)
        return {"has_audio": pcm is not None}

    def transcribe(video_id: str, has_audio: bool) -> dict:
        if not has_audio:
            return {"video_id": video_id, "source": sources.get(video_id), "has_audio": False, "audio_s": None,
                    "segments": []}
        pcm = np.load(pcm_path(video_id))
        segments = transcriber().transcribe(pcm) if len(pcm) else []
        return {"video_id": video_id, "source": sources.get(video_id), "has_audio": True,
                "audio_s": len(pcm) / SAMPLE_RATE, "segments": segments}

    progress = Progress("videos", len(todo))
    for video_id, decoded, reason in each_video(todo, decode, 1, isolation):
        if reason is None:
            try:
                records[video_id] = transcribe(video_id, decoded["has_audio"])
                cache.save(video_id, records[video_id])
            except Exception as exc:  # noqa: BLE001 - one video's failure is that video's
                log.exception("%s failed", video_id)
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                pcm_path(video_id).unlink(missing_ok=True)
        if reason is not None:  # not cached: a rerun tries it again
            records[video_id] = {"failed": reason}
        progress.update()
    records = {v: records[v] for v in files}
    rows, segments = [], []
    for video_id, record in records.items():
        if "failed" in record:
            rows.append({"video_id": video_id, "kept": False, "reason": f"audio: {record['failed']}"})
            continue
        found = record["segments"]
        rows.append({"video_id": video_id, "kept": True, "reason": "", "has_audio": record["has_audio"],
                     "audio_s": record["audio_s"], "language": found[0]["language"] if found else None,
                     "segments": len(found)})
        segments += [{"video_id": video_id, **s} for s in found]
    table = VIDEO.table(rows, *AUDIO_FIELDS)
    summary = {"videos": len(rows), "transcribed": sum(bool(r.get("segments")) for r in rows),
               "no_audio": sum(r.get("has_audio") is False for r in rows),
               "failed": sum(not r["kept"] for r in rows), "segments": len(segments)}
    return table, pd.DataFrame(segments, columns=SEGMENT_SCHEMA.names), summary
