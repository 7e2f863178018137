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


def test_the_exports_carry_captions_and_transcripts(tmp_path):
    """The clip export gets each clip's caption and transcript; the dataset and COCO get
    each frame's (with_text), null where there is none."""
    import json

    from video_miner.clips import clip_export, write_clip_export
    from video_miner.export import build_coco, with_text, write_dataset
    from video_miner.texts import CAPTION_SCHEMA, clip_captions

    segments = pd.DataFrame({"video_id": ["a"], "start_s": [0.0], "end_s": [1.0], "text": ["hello"],
                             "language": ["en"]})
    shots = pd.DataFrame({"video_id": ["a", "a"], "clip_id": ["a1", "a2"], "start_frame": [0, 25],
                          "end_frame": [25, 50], "start_s": [0.0, 1.0], "end_s": [1.0, 2.0], "kept": [True, True],
                          "reason": ["", ""]})
    captions = pd.DataFrame([
        {"video_id": "a", "target": "clip", "frame_index": None, "clip_id": "a1", "kept": True, "reason": "",
         "caption": "a clip", "model": "m", "prompt_tokens": 1, "completion_tokens": 1, "cached": False},
        {"video_id": "a", "target": "clip", "frame_index": None, "clip_id": "a2", "kept": False,
         "reason": "captions API: HTTP 400: bad", "caption": None, "model": "m", "prompt_tokens": None,
         "completion_tokens": None, "cached": False},
        {"video_id": "a", "target": "frame", "frame_index": 0, "clip_id": None, "kept": True, "reason": "",
         "caption": "a frame", "model": "m", "prompt_tokens": 1, "completion_tokens": 1, "cached": False},
    ], columns=CAPTION_SCHEMA.names)
    rows = clip_export({"shots": shots}, {}, {}, None, clip_captions(captions))
    rows["transcript"] = rows["clip_id"].map(clip_transcripts(segments, rows))
    write_clip_export(tmp_path / "clips", rows, None)
    lines = [json.loads(line) for line in (tmp_path / "clips" / "metadata.jsonl").read_text().splitlines()]
    assert [(r["caption"], r["transcript"]) for r in lines] == [("a clip", "hello"), (None, None)]
    transcripts = pd.read_parquet(tmp_path / "clips" / "metadata.parquet")["transcript"]
    assert transcripts[0] == "hello" and pd.isna(transcripts[1])

    image = tmp_path / "f.jpg"
    from PIL import Image

    Image.new("RGB", (8, 6)).save(image)
    frames = pd.DataFrame({"video_id": ["a", "a"], "frame_index": [0, 50], "frame_id": ["a/0", "a/50"],
                           "timestamp_s": [0.5, 2.0], "width": [8, 8], "height": [6, 6], "path": [str(image)] * 2,
                           "split": ["train", "train"]})
    texts = with_text(frames, captions, segments)
    assert texts.loc[0, ["caption", "transcript"]].tolist() == ["a frame", "hello"]
    assert texts.loc[1, ["caption", "transcript"]].isna().all()
    write_dataset(tmp_path / "dataset", texts, {})
    metadata = pd.read_parquet(tmp_path / "dataset" / "train" / "metadata.parquet")
    assert metadata.loc[0, ["caption", "transcript"]].tolist() == ["a frame", "hello"]
    assert metadata.loc[1, ["caption", "transcript"]].isna().all()
    assert "caption" not in pd.read_parquet(write_dataset(tmp_path / "plain", frames, {}) and
                                            tmp_path / "plain" / "train" / "metadata.parquet")
    images = build_coco(texts.assign(bbox=[[]] * 2, category=[[]] * 2, score=[[]] * 2), ["cat"])["images"]
    assert [(i["caption"], i["transcript"]) for i in images] == [("a frame", "hello"), (None, None)]


def test_a_hung_or_crashing_decoder_costs_only_its_video(tone_video, tmp_path, monkeypatch):
    """The sound is decoded in a worker process (the library's fault hook: a real hang, a
    real segfault); the model, here a stand-in that records what reached it, stays in the
    job's process and gets the decoded samples whole."""
    from video_miner.audio import decode_isolation
    from video_miner.workers import FAULTS_ENV, Limits

    heard = []

    class Transcriber:
        def transcribe(self, pcm):
            heard.append(len(pcm))
            return [{"start_s": 0.0, "end_s": len(pcm) / SAMPLE_RATE, "text": "heard", "language": "en"}]

    monkeypatch.setenv(FAULTS_ENV, "audio:hang=hang,audio:crash=crash")
    limits = Limits.from_config({"extract_s": 2, "extract_s_per_video_s": 0})
    files = {v: str(tone_video) for v in ("crash", "hang", "ok")}
    table, segments, record = transcribe_videos(files, tmp_path / "cache", AudioSettings(), Transcriber,
                                                isolation=decode_isolation(limits, {}, {}))
    rows = table.to_pandas().set_index("video_id")
    assert rows.loc["crash", "reason"] == "audio: decoder crashed (SIGSEGV, signal 11)"
    assert rows.loc["hang", "reason"] == "audio: timed out after 2 s in audio"
    assert rows.loc["ok", "kept"] and segments["video_id"].tolist() == ["ok"]
    assert heard == [len(decode_audio(str(tone_video)))]
    assert record["failed"] == 2 and not list((tmp_path / "cache").glob("*.npy"))  # handed over, then removed
