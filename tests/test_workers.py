"""A video that hangs, crashes its decoder or eats memory costs only itself: faults are
injected inside the worker child (the library's VIDEO_MINER_FAULTS hook), so the real
isolation path runs (a child process, a real segfault, a real rlimit)."""

import pandas as pd
import pytest

from video_miner.download import DownloadOptions, download_shard
from video_miner.extract import ExtractOptions, extract_shard
from video_miner.workers import FAULTS_ENV, Isolation, Limits, isolated_map

# Generous for the videos that work (each takes well under a second), short for the hang.
LIMITS = Limits(memory_gb=0.5, download_s=30, download_gb=1, extract_s=2, extract_s_per_video_s=10, probe_s=30)


def test_a_hang_a_crash_and_a_memory_blowup_fail_only_their_videos(videos, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "extract:hang=hang,extract:crash=crash,extract:memory=memory")
    ids = ["good1", "hang", "crash", "memory", "good2"]
    files = [str(videos["h264.mp4"])] * len(ids)
    # 3 s of video gives the good ones 32 s; the hanging one, of unknown length, 2 s.
    shard = pd.DataFrame({"video_id": ids, "file": files, "location": files, "filesize": [1] * len(ids),
                          "duration": [3.0, None, 3.0, 3.0, 3.0]})
    table, record = extract_shard(shard, tmp_path / "out", tmp_path / "cache", ExtractOptions(every_n_frames=30),
                                  workers=2, limits=LIMITS)
    outcomes = record["video_outcomes"]
    assert outcomes["hang"]["reason"] == "timed out after 2 s in extract"
    assert outcomes["crash"]["reason"] == "decoder crashed (SIGSEGV, signal 11)"
    assert outcomes["memory"]["reason"] == "memory limit 0.5 GB exceeded in extract"
    assert not any(outcomes[v]["ok"] for v in ("hang", "crash", "memory"))
    for good in ("good1", "good2"):
        assert outcomes[good]["ok"] and outcomes[good]["frames_extracted"] == 3
    assert table.column("video_id").to_pylist() == ["good1"] * 3 + ["good2"] * 3

    # Failures are not cached: with the faults gone, a rerun extracts exactly those three.
    monkeypatch.delenv(FAULTS_ENV)
    _, again = extract_shard(shard, tmp_path / "out2", tmp_path / "cache", ExtractOptions(every_n_frames=30),
                             workers=2, limits=LIMITS)
    assert all(o["ok"] and o["frames_extracted"] == 3 for o in again["video_outcomes"].values())


def test_a_hanging_download_times_out_and_the_rest_arrive(videos, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "download:stuck=hang")
    sources = [{"video_id": v, "kind": "local", "location": str(videos["h264.mp4"])} for v in ("ok1", "stuck", "ok2")]
    limits = Limits(memory_gb=None, download_s=2, download_gb=None, extract_s=1, extract_s_per_video_s=1, probe_s=1)
    table, record = download_shard(sources, tmp_path / "out", tmp_path / "cache", DownloadOptions(), workers=2,
                                   limits=limits)
    rows = table.to_pandas().set_index("video_id")
    assert rows.loc["stuck", "reason"] == "timed out after 2 s in download"
    assert rows.loc[["ok1", "ok2"], "kept"].all() and not rows.loc["stuck", "kept"]
    assert record == {"videos": 3, "ok": 2, "failed": 1}


def test_a_watch_stops_a_video_and_errors_are_reasons(tmp_path):
    def work(video_id):
        if video_id == "raises":
            raise ValueError("bad header")
        if video_id == "grows":
            while True:
                (tmp_path / "grows").write_text("x")
        return {"id": video_id}

    def watch(video_id):
        return "grew too big" if video_id == "grows" and (tmp_path / "grows").exists() else None

    isolation = Isolation("probe", "prober", timeout_s=lambda v: 60, watch=watch)
    results = {v: (record, reason) for v, record, reason in isolated_map(["a", "raises", "grows", "b"], work, 2, isolation)}
    assert results == {"a": ({"id": "a"}, None), "raises": (None, "ValueError: bad header"),
                       "grows": (None, "grew too big"), "b": ({"id": "b"}, None)}


@pytest.mark.parametrize("duration,size,expected", [
    (60.0, 10**9, 300 + 2 * 60),  # the probed duration
    (None, 10**8, 300 + 2 * 1600),  # unknown: 100 MB at 0.5 Mbit/s is 1600 s
    (float("nan"), 0, 300),
])
def test_extraction_time_limit_scales_with_the_video(duration, size, expected):
    limits = Limits.from_config({})
    assert limits.extract_timeout_s(duration, size) == pytest.approx(expected)
    assert limits.memory_bytes == 4 * 2**30
