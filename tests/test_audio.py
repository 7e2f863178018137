"""Audio: PyAV decoding to 16 kHz mono, Whisper through a tiny random-weight checkpoint
(its text is arbitrary: this proves the wiring), and the attachment of segments to clips
and frames with hand-made segments (the logic that matters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import pattern_frames
from video_miner.audio import SAMPLE_RATE, AudioSettings, WhisperTranscriber, decode_audio, transcribe_videos, windows
from video_miner.texts import clip_transcripts, frame_transcripts, read_segments, write_segments
from video_miner.models import ModelSettings
from video_miner.synth import encode_video


@pytest.fixture(scope="module")
def tone_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.mp4"
    encode_video(path, pattern_frames(30, 64, 48), fps=10, tone_hz=440)
    return path


def test_decode_gives_16k_mono_and_none_without_audio(tone_video, videos):
    pcm = decode_audio(str(tone_video))
    assert pcm.dtype == np.float32 and abs(len(pcm) / SAMPLE_RATE - 3.0) < 0.2
    spectrum = np.abs(np.fft.rfft(pcm[:SAMPLE_RATE]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # 1 Hz bins over one second
    assert decode_audio(str(videos["h264.mp4"])) is None
    assert windows(int(2.5 * SAMPLE_RATE), 1.0) == [(0, 16000), (16000, 32000), (32000, 40000)]


def test_segments_attach_to_the_clips_they_overlap_and_the_frames_they_cover():
    segments = pd.DataFrame({"video_id": ["a", "a", "a", "b"], "start_s": [0.0, 2.0, 5.0, 0.0],
                             "end_s": [2.0, 5.0, 9.0, 1.0], "text": ["one", "two", "three", "other"],
                             "language": ["en"] * 4})
    clips = pd.DataFrame({"video_id": ["a", "a", "a", "c"], "clip_id": ["a1", "a2", "a3", "c1"],
                          "start_s": [0.5, 2.0, 9.0, 0.0], "end_s": [2.5, 4.0, 10.0, 1.0]})
    # a1 spans two segments; a2 starts where "one" ends (touching is no overlap); a3 starts
    # where the last ends; c has no speech.
    assert clip_transcripts(segments, clips) == {"a1": "one two", "a2": "two"}
    frames = pd.DataFrame({"video_id": ["a", "a", "a", "a", "b", "c"], "timestamp_s": [0.0, 2.0, 4.99, 9.0, 0.5, 0.5]})
    assert frame_transcripts(segments, frames) == ["one", "two", "two", None, "other", None]


def test_whisper_transcribes_in_windows_and_caches(tiny_models, tone_video, videos, tmp_path):
    settings = AudioSettings(model=str(tiny_models["whisper"]), language=None, chunk_s=1.0, max_new_tokens=4)
    made = []

    def make():
        made.append(1)
        return WhisperTranscriber(settings, ModelSettings(device="cpu"))

    files = {"tone": str(tone_video), "silent": str(videos["h264.mp4"]), "broken": str(tmp_path / "missing.mp4")}
    table, segments, record = transcribe_videos(files, tmp_path / "cache", settings, make)
    rows = table.to_pandas().set_index("video_id")
    assert rows.loc["tone", "kept"] and rows.loc["tone", "has_audio"] and rows.loc["tone", "audio_s"] > 2.9
    assert rows.loc["silent", "kept"] and not rows.loc["silent", "has_audio"] and rows.loc["silent", "segments"] == 0
    assert not rows.loc["broken", "kept"] and rows.loc["broken", "reason"].startswith("audio: ")
    assert record == {"videos": 3, "transcribed": int(rows["segments"].fillna(0).gt(0).sum()), "no_audio": 1,
                      "failed": 1, "segments": len(segments)}
    # Windows of 1 s: at most three segments, each within its window, language detected.
    tone = segments[segments["video_id"] == "tone"]
    # (AAC's padding may leave a few ms past 3 s: a fourth, short window)
    assert tone["start_s"].tolist()[:3] == [0.0, 1.0, 2.0] and len(tone) in (3, 4)
    assert tone["text"].str.len().gt(0).all() and tone["language"].nunique() == 1
    assert tone["language"].iloc[0] in ("en", "de") and rows.loc["tone", "segments"] == len(tone)
    write_segments(tmp_path / "s.parquet", segments)
    assert read_segments([tmp_path / "s.parquet"])[["video_id", "start_s", "text"]].equals(
        segments[["video_id", "start_s", "text"]])
    # A rerun hears nothing again (the broken file is tried again, cheaply).
    transcribe_videos(files, tmp_path / "cache", settings, make)
    assert len(made) == 1
