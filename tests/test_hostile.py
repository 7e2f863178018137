"""Hostile inputs, all in one run: each video is processed or failed with its reason,
the run finishes, and the good videos are unaffected."""

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_workflow
from video_miner.ids import video_id_for_url
from video_miner.tables import video_outcomes
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO

pytestmark = pytest.mark.slow

# url path -> (expected status, failed stage, words the reason must contain)
CASES = {
    "missing/clip.mp4": ("failed", "download", "HTTP Error 404"),
    "slow/h264.mp4": ("failed", "download", "timed out"),
    "flaky/single_frame.mp4": ("complete", None, None),
    "page.html": ("failed", "download", "not a video: the server sent an HTML page"),
    "loop/clip.mp4": ("failed", "download", "redirect"),
    "empty.mp4": ("failed", "download", "empty file"),
    "truncated.mp4": ("failed", "probe", "not a readable media file"),
    "truncated_faststart.mp4": ("complete", None, None),
    "audio.m4a": ("failed", "probe", "no video stream"),
    "rotated.mp4": ("complete", None, None),
    "vfr.mp4": ("complete", None, None),
    "odd.mp4": ("complete", None, None),
    "vp9.webm": ("complete", None, None),
    "long.mp4": ("complete", None, None),
    "huge.mp4": ("complete", None, None),
}
REFUSED = "http://127.0.0.1:9/clip.mp4"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, http_server, videos, tiny_models):
    workdir = tmp_path_factory.mktemp("hostile")
    config = {
        "urls": [http_server.url(path) for path in CASES] + [REFUSED],
        "download": {"retries": 2, "retry_backoff_s": 0.05, "socket_timeout_s": 1},
        "extract": {"strategy": "interval", "every_n_frames": 10, "max_frames": 5},
        "models": {"device": "cpu"},
        "shard_size": 8,
        "filter": {"enabled": True, "model": str(tiny_models["siglip2"]), "classes": ["a photo of a cat"],
                   "threshold": 0.0},
        "dedup": {"backend": "phash"},
    }
    run_workflow(workdir, config)
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")
    return workdir, status


@pytest.mark.parametrize("path", list(CASES))
def test_each_input_ends_processed_or_failed_with_its_reason(hostile_run, http_server, path):
    _, status = hostile_run
    expected_status, stage, words = CASES[path]
    row = status.loc[video_id_for_url(http_server.url(path))]
    assert row["status"] == expected_status, row.to_dict()
    if expected_status == "failed":
        assert isinstance(row["reason"], str) and row["reason"]
    if stage:
        assert row["failed_stage"] == stage
    if words:
        assert words.lower() in row["reason"].lower(), row["reason"]


def test_refused_connection_is_a_retryable_failure(hostile_run):
    workdir, status = hostile_run
    assert status.loc[video_id_for_url(REFUSED), "failed_stage"] == "download"
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    refused = next(f for f in summary["failed_videos"] if f["location"] == REFUSED)
    assert refused["retryable"] is True and "refused" in refused["reason"].lower()


def tables(workdir, stage):
    return sorted((workdir / "results" / stage).glob("*.parquet"))


def test_good_videos_keep_their_frames(hostile_run, http_server):
    workdir, status = hostile_run
    frames = status.set_index("location")["frames_extracted"]
    assert frames[http_server.url("flaky/single_frame.mp4")] == 1
    assert frames[http_server.url("long.mp4")] == 5  # 600 frames, max_frames 5
    assert frames[http_server.url("vp9.webm")] == 4
    extracted = FRAME.read(tables(workdir, "extract"))
    assert extracted.groupby("video_id").size().to_dict() == {
        video_id: n for video_id, n in status["frames_extracted"].items() if n}
    rotated = extracted[extracted["video_id"] == video_id_for_url(http_server.url("rotated.mp4"))]
    assert len(rotated) and set(zip(rotated["width"], rotated["height"])) == {(240, 320)}
    odd = extracted[extracted["video_id"] == video_id_for_url(http_server.url("odd.mp4"))]
    assert len(odd) and set(zip(odd["width"], odd["height"])) == {(321, 241)}
    assert all((workdir / p).is_file() for p in extracted["path"])
    written = pd.read_csv(workdir / "results" / "status.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert written.set_index("location").loc[http_server.url("rotated.mp4"), "width"] == "240"  # not 240.0


def test_each_failure_is_recorded_in_its_stage_table(hostile_run, http_server):
    workdir, status = hostile_run
    downloads = VIDEO.read(tables(workdir, "download")).set_index("video_id")
    probed = VIDEO.read(tables(workdir, "probe")).set_index("video_id")
    outcomes = {v: o for p in tables(workdir, "extract") for v, o in video_outcomes(p).items()}
    for path, (expected_status, stage, words) in CASES.items():
        video_id = video_id_for_url(http_server.url(path))
        row = downloads.loc[video_id]
        assert row["location"] == http_server.url(path)
        if stage == "download":
            assert not row["kept"] and words.lower() in row["reason"].lower(), row.to_dict()
            assert video_id not in outcomes and video_id not in probed.index
        elif stage == "probe":  # downloaded, but no video: never reaches extraction
            assert row["kept"] and not probed.loc[video_id, "kept"] and video_id not in outcomes
            assert words.lower() in probed.loc[video_id, "reason"].lower()
        elif stage == "extract":
            assert row["kept"] and not outcomes[video_id]["ok"], outcomes[video_id]
            assert words.lower() in outcomes[video_id]["reason"].lower()
        elif expected_status == "complete":
            assert row["kept"] and outcomes[video_id]["ok"], outcomes.get(video_id)
            assert probed.loc[video_id, "kept"] and probed.loc[video_id, "frame_count"] > 0
    refused = downloads.loc[video_id_for_url(REFUSED)]
    assert not refused["kept"] and refused["transient"] and refused["attempts"] == 3  # retries: 2


def test_probe_metadata_of_the_odd_videos(hostile_run, http_server):
    workdir, _ = hostile_run
    rows = VIDEO.read(tables(workdir, "probe"))
    probed = rows.set_index(rows["video_id"].map({video_id_for_url(http_server.url(p)): http_server.url(p)
                                                   for p in CASES}))
    huge = probed.loc[http_server.url("huge.mp4")]
    assert (huge["width"], huge["height"], huge["codec"], huge["frame_count"]) == (3840, 2160, "h264", 4)
    rotated = probed.loc[http_server.url("rotated.mp4")]
    assert (rotated["rotation"], rotated["width"], rotated["height"]) == (90, 240, 320)
    assert probed.loc[http_server.url("vfr.mp4"), "is_vfr"] and not probed.loc[http_server.url("long.mp4"), "is_vfr"]
    assert probed.loc[http_server.url("vp9.webm"), "container"] == "matroska,webm"
    # A single frame still has its hash frames (all the same frame); a truncated file whose
    # last frames do not decode has none (only an exact copy could match it). No two inputs are copies.
    hashed = probed.loc[probed["kept"], "phash"].map(lambda h: h is not None)
    assert hashed[~hashed].index.tolist() == [http_server.url("truncated_faststart.mp4")]
    assert json.loads((workdir / "results" / "metadata" / "duplicates.json").read_text()) == {}


def test_very_high_resolution_frames_are_scored(hostile_run, http_server):
    workdir, _ = hostile_run
    video_id = video_id_for_url(http_server.url("huge.mp4"))
    huge = FRAME.read(tables(workdir, "filter"), videos=[video_id])
    assert len(huge) == 1 and (huge["width"] == 3840).all() and huge["best_score"].notna().all()
    assert huge["kept"].all()  # threshold 0: a readable frame passes


def test_the_summary_lists_every_failure(hostile_run):
    workdir, status = hostile_run
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    failed = status[status["status"] == "failed"]
    assert summary["videos"]["failed"] == len(failed) == 8
    assert {f["video_id"] for f in summary["failed_videos"]} == set(failed.index)


def test_a_failed_job_still_ends_with_the_summary(tmp_path, videos):
    """A job that fails outright (here its cache folder cannot be made) fails only its
    shard's videos; a decoder crash fails only its video; the run exits non-zero and
    still writes status.tsv and pipeline_result.json."""
    import shutil

    from video_miner.defaults import default
    from video_miner.sources import assign_shards, collect_videos
    from video_miner.workers import FAULTS_ENV

    for group, names in {"good": ["rotated.mp4", "odd.mp4"], "doomed": ["vp9.webm"]}.items():
        (tmp_path / group).mkdir()
        for name in names:
            shutil.copy(videos[name], tmp_path / group / name)
    config = {"local_videos": [str(tmp_path / "good"), str(tmp_path / "doomed")], "filter": {"enabled": False},
              "dedup": {"enabled": False}, "detection": {"enabled": False}, "models": {"device": "cpu"}}
    (tmp_path / "run").mkdir()
    collection = collect_videos({**config, "local_extensions": default("local_extensions")}, root=str(tmp_path / "run"))
    shards = assign_shards(collection, 32)
    ids = {Path(s.location).name: v for v, s in collection.videos.items()}
    doomed = next(s for s, members in shards.items() if ids["vp9.webm"] in members)
    blocker = tmp_path / "run" / "results" / ".cache" / "extract" / doomed
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the job needs a folder")
    proc = run_workflow(tmp_path / "run", config, "--keep-going", check=False,
                        env={FAULTS_ENV: f"extract:{ids['odd.mp4']}=crash"})
    assert proc.returncode != 0
    status = pd.read_csv(tmp_path / "run" / "results" / "status.tsv", sep="\t").set_index("video_id")
    assert status.loc[ids["rotated.mp4"], "status"] == "complete"
    assert status.loc[ids["odd.mp4"], "reason"] == "decoder crashed (SIGSEGV, signal 11)"
    doomed_row = status.loc[ids["vp9.webm"]]
    assert (doomed_row["status"], doomed_row["failed_stage"]) == ("failed", "extract")
    # The exception that ended the job, quoted from its log.
    assert doomed_row["reason"].startswith("extract job failed: ") and "Error" in doomed_row["reason"]
    assert doomed_row["reason"].endswith(f"; see logs/extract/{doomed}.log")
    summary = json.loads((tmp_path / "run" / "results" / "pipeline_result.json").read_text())
    assert summary["complete"] is False
    assert summary["failed_jobs"] == [{"stage": "extract", "shard": doomed, "log": f"logs/extract/{doomed}.log",
                                       "error": doomed_row["reason"].split(": ", 1)[1].rsplit("; see ", 1)[0],
                                       "videos": 1}]
    assert summary["videos"] == {**summary["videos"], "total": 3, "failed": 2}
