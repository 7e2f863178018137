"""The probe stage and video dedup on videos of our own making: metadata values, the
filters, and duplicate groups of re-encoded, rescaled and re-muxed copies."""

import re
from fractions import Fraction

import av
import numpy as np
import pandas as pd
import pytest

from video_miner.probe import ProbeFilters, probe_shard, probe_video, rejection
from video_miner.synth import Scene, render_scenes
from video_miner.video import VideoError
from video_miner.videodedup import VideoDedupSettings, candidate_pairs, group_videos, median_distances
from video_miner.workers import FAULTS_ENV, Limits

SCENES = [Scene("astronaut", 1.5, (0.5, 0.3, 1.0)), Scene("coffee", 1.5, (0.5, 0.5, 1.0), (0.5, 0.5, 1.3)),
          Scene("chelsea", 1.0, (0.3, 0.5, 1.0), (0.6, 0.5, 1.0))]


def remux(source, target, audio=False):
    """The same video packets in another container, with a silent AAC track if ``audio``."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video_in = inp.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "stereo"
        for packet in inp.demux(video_in):
            if packet.dts is None:
                continue
            packet.stream = video_out
            out.mux(packet)
        if audio:
            for i in range(10):
                frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    render_scenes(root / "original.mp4", SCENES, width=192, height=108, fps=10, seed=4)
    render_scenes(root / "reencoded.mp4", SCENES, width=192, height=108, fps=10, seed=4, options={"crf": "35"})
    render_scenes(root / "rescaled.mp4", SCENES, width=384, height=216, fps=10, seed=4)
    render_scenes(root / "vp9.webm", SCENES, width=192, height=108, fps=10, seed=4, codec="libvpx-vp9",
                  options={"deadline": "realtime", "cpu-used": "8"})
    remux(root / "original.mp4", root / "remuxed.mkv")
    remux(root / "original.mp4", root / "with_audio.mp4", audio=True)
    render_scenes(root / "other.mp4", [Scene("rocket", 2.0, (0.5, 0.6, 1.0), (0.5, 0.3, 1.8)),
                                       Scene("camera", 2.0, (0.5, 0.5, 1.0))], width=192, height=108, fps=10, seed=5)
    # The same scenes for longer: durations 25% apart are no copies.
    render_scenes(root / "longer.mp4", [*SCENES, Scene("chelsea", 1.0, (0.6, 0.5, 1.0))], width=192, height=108,
                  fps=10, seed=4)
    return root


def test_metadata_of_codecs_containers_rotation_vfr_and_audio(videos, copies):
    h264 = probe_video(videos["h264.mp4"])
    assert (h264["container"], h264["codec"], h264["profile"], h264["pix_fmt"]) == (
        "mov,mp4,m4a,3gp,3g2,mj2", "h264", "High", "yuv420p")
    assert (h264["width"], h264["height"], h264["coded_width"], h264["coded_height"]) == (320, 240, 320, 240)
    assert (h264["fps"], h264["fps_nominal"], h264["is_vfr"], h264["frame_count"]) == (30.0, 30.0, False, 90)
    assert h264["duration_s"] == pytest.approx(3.0) and h264["bit_rate"] > 0 and h264["rotation"] == 0
    assert (h264["has_audio"], h264["audio_codec"], h264["phash"]) == (False, None, None)
    vp9 = probe_video(videos["vp9.webm"])
    assert (vp9["container"], vp9["codec"], vp9["frame_count"], vp9["fps"]) == ("matroska,webm", "vp9", 40, 20.0)
    assert vp9["duration_s"] == pytest.approx(2.0) and not vp9["is_vfr"]  # millisecond timestamps, constant rate
    rotated = probe_video(videos["rotated.mp4"])
    assert (rotated["rotation"], rotated["width"], rotated["height"]) == (90, 240, 320)  # displayed portrait
    assert (rotated["coded_width"], rotated["coded_height"]) == (320, 240)
    vfr = probe_video(videos["vfr.mp4"])
    assert vfr["is_vfr"] and vfr["frame_count"] == 60 and vfr["fps"] < vfr["fps_nominal"]
    assert probe_video(copies / "original.mp4")["coded_height"] == 112  # H.264 stores 16-pixel rows
    sound = probe_video(copies / "with_audio.mp4")
    assert (sound["has_audio"], sound["audio_codec"], sound["audio_sample_rate"], sound["audio_channels"]) == (
        True, "aac", 16000, 2)
    odd = probe_video(videos["odd.mp4"])
    assert (odd["width"], odd["height"], odd["pix_fmt"]) == (321, 241, "yuv444p")


@pytest.mark.parametrize("name,reason", [("empty.mp4", "empty file"), ("error.json", "not a video: the file is JSON"),
                                         ("audio.m4a", "no video stream (audio-only or not a video)"),
                                         ("truncated.mp4", "not a readable media file")])
def test_a_file_that_cannot_be_probed_raises_its_reason(videos, name, reason):
    with pytest.raises(VideoError, match=re.escape(reason)):
        probe_video(videos[name])


@pytest.mark.parametrize("filters,reason", [
    ({}, None),
    ({"min_duration_s": 5}, "duration 3.00 s is below probe.filters.min_duration_s (5 s)"),
    ({"max_duration_s": 2.5}, "duration 3.00 s is above probe.filters.max_duration_s (2.5 s)"),
    ({"min_duration_s": 3, "max_duration_s": 3}, None),  # bounds are inclusive
    ({"min_height": 241}, "height 240 px is below probe.filters.min_height (241 px)"),
    ({"min_height": 240, "min_fps": 30}, None),
    ({"min_fps": 30.5}, "frame rate 30.00 fps is below probe.filters.min_fps (30.5 fps)"),
    ({"codecs": ["vp9", "av1"]}, "codec h264 is not in probe.filters.codecs (vp9, av1)"),
    ({"codecs": ["h264"]}, None),
    ({"require_audio": True}, "no audio stream (probe.filters.require_audio)"),
])
def test_filters_reject_with_their_reason(filters, reason):
    fields = {"duration_s": 3.0, "height": 240, "fps": 30.0, "codec": "h264", "has_audio": False}
    assert rejection(fields, ProbeFilters.from_config(filters)) == reason


def test_a_filter_on_a_value_the_file_does_not_say_rejects():
    assert rejection({"duration_s": None}, ProbeFilters(min_duration_s=1)) == \
        "duration unknown (probe.filters.min_duration_s is set)"
    assert rejection({"duration_s": None}, ProbeFilters()) is None


def test_probe_shard_records_failures_and_rejections_and_caches(videos, copies, tmp_path, monkeypatch):
    files = {"good": (copies / "original.mp4"), "short": videos["h264.mp4"], "json": videos["error.json"],
             "crash": (copies / "original.mp4")}
    shard = pd.DataFrame({"video_id": list(files), "file": [str(f) for f in files.values()],
                          "location": [str(f) for f in files.values()], "filesize": [f.stat().st_size for f in files.values()]})
    limits = Limits(memory_gb=None, download_s=None, download_gb=None, extract_s=1, extract_s_per_video_s=1, probe_s=30)
    monkeypatch.setenv(FAULTS_ENV, "probe:crash=crash")
    table, record = probe_shard(shard, tmp_path / "cache", ProbeFilters(min_duration_s=3.5), 8, workers=2,
                                limits=limits)
    rows = table.to_pandas().set_index("video_id")
    assert rows.loc["good", "kept"] and rows.loc["good", "reason"] == "" and len(rows.loc["good", "phash"]) == 64
    assert rows.loc["short", "reason"] == "duration 3.00 s is below probe.filters.min_duration_s (3.5 s)"
    assert rows.loc["short", "codec"] == "h264"  # a rejected video keeps its metadata
    assert rows.loc["json", "reason"] == "not a video: the file is JSON" and pd.isna(rows.loc["json", "codec"])
    assert rows.loc["crash", "reason"] == "decoder crashed (SIGSEGV, signal 11)"
    assert (record["kept"], record["failed"], record["rejected"]) == (1, 2, 1)
    # New filters probe nothing again (the crash is retried: failures are not cached).
    monkeypatch.delenv(FAULTS_ENV)
    monkeypatch.setattr("video_miner.probe.probe_video", lambda *a: pytest.fail("probed again"), raising=True)
    shard = shard[shard["video_id"] != "crash"]
    table, record = probe_shard(shard, tmp_path / "cache", ProbeFilters(), 8, limits=limits)
    assert table.column("kept").to_pylist() == [True, True, False]


def hashes_of(root, names):
    probed = {name: probe_video(root / name, 8) for name in names}
    return pd.DataFrame([{"video_id": name, **{k: probed[name][k] for k in
                          ("width", "height", "duration_s", "content_hash", "phash")}} for name in names])


def test_copies_are_grouped_under_the_best_copy(copies):
    names = ["original.mp4", "reencoded.mp4", "rescaled.mp4", "vp9.webm", "remuxed.mkv", "with_audio.mp4",
             "other.mp4", "longer.mp4"]
    videos = hashes_of(copies, names)
    groups = group_videos(videos, VideoDedupSettings()).set_index("video_id")
    # The rescaled copy has the most pixels: it is the canonical one, whatever the order.
    for copy in ("original.mp4", "reencoded.mp4", "vp9.webm", "remuxed.mkv", "with_audio.mp4"):
        assert groups.loc[copy, "duplicate_of"] == "rescaled.mp4", copy
        assert groups.loc[copy, "match"] == "near" and groups.loc[copy, "distance"] <= 8
    assert groups.loc[["rescaled.mp4", "other.mp4", "longer.mp4"], "duplicate_of"].isna().all()
    shuffled = group_videos(videos.sample(frac=1, random_state=3), VideoDedupSettings()).set_index("video_id")
    pd.testing.assert_frame_equal(shuffled, groups)
    # The same video stream re-muxed (another container, an audio track added) is an exact copy.
    exact = group_videos(videos[videos["video_id"].isin(["original.mp4", "remuxed.mkv", "with_audio.mp4"])],
                         VideoDedupSettings(max_distance=0)).set_index("video_id")
    assert exact["duplicate_of"].tolist() == [None, "original.mp4", "original.mp4"]  # equal: the smallest id
    assert exact["match"].tolist() == [None, "exact", "exact"] and exact["distance"].tolist()[1:] == [0, 0]


def codes_with(flips_per_frame, rng, base):
    """``base`` (frames, 8) with ``flips`` distinct bits flipped in each frame's hash."""
    bits = np.unpackbits(base, axis=1)
    for frame, flips in enumerate(flips_per_frame):
        bits[frame, rng.choice(64, flips, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def table_of(codes, durations, sizes):
    return pd.DataFrame({"video_id": [f"v{i}" for i in range(len(codes))], "width": sizes, "height": 100,
                         "duration_s": durations, "content_hash": [f"h{i}" for i in range(len(codes))],
                         "phash": [c.tobytes() for c in codes]})


def test_median_distance_and_duration_decide_with_controlled_hashes():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    # v1: 4 frames far off, 4 within 3 bits: median (3 + 30) / 2 is over 8: not a copy.
    # v2: 5 frames within 3 bits, 3 far off: median 3: a copy. v3: as v2 but 3% longer.
    codes = [base, codes_with([3, 3, 3, 3, 30, 30, 30, 30], rng, base), codes_with([3, 0, 3, 30, 3, 30, 30, 2], rng, base),
             codes_with([1] * 8, rng, base)]
    assert median_distances(codes[0], codes[1]) == 16.5 and median_distances(codes[0], codes[2]) == 3
    groups = group_videos(table_of(codes, [10.0, 10.0, 9.9, 10.3], [100, 100, 100, 100]), VideoDedupSettings())
    assert groups["duplicate_of"].tolist() == [None, None, "v0", None]
    # Same resolution: the longest is canonical; then the smallest id.
    groups = group_videos(table_of(codes[:3], [10.0, 10.0, 10.1], [100, 100, 100]), VideoDedupSettings())
    assert groups["duplicate_of"].tolist() == ["v2", None, None]
    wider = group_videos(table_of(codes[:3], [10.0, 10.0, 10.1], [100, 100, 50]), VideoDedupSettings())
    assert wider["duplicate_of"].tolist() == [None, None, "v0"]


def test_candidates_find_every_position_within_five_bits():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (500, 2, 8), dtype=np.uint8)
    copies = np.stack([codes_with([5, 40], rng, b) for b in base])
    pairs = candidate_pairs(np.concatenate([base, copies]), 8)
    found = {tuple(p) for p in pairs.tolist()}
    assert all((i, 500 + i) in found for i in range(500))
