"""The real workflow end to end: loopback downloads, extraction, summary."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_extract import decode_all, expected_positions

from conftest import FAST_DOWNLOADS, run_workflow
from video_miner.extract import ExtractOptions
from video_miner.ids import video_id_for_url
from video_miner.tables import video_outcomes
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO

pytestmark = pytest.mark.slow


def tables(workdir, stage):
    """Every shard table of a stage, as the run left them."""
    return sorted((workdir / "results" / stage).glob("*.parquet"))


def download_row(workdir, video_id):
    """A video's row in the download tables, with the shard it went through."""
    for path in tables(workdir, "download"):
        rows = VIDEO.read(path)
        rows = rows[rows["video_id"] == video_id]
        if len(rows):
            assert len(rows) == 1, rows
            return path.stem, rows.iloc[0]
    raise AssertionError(f"{video_id} is in no download table")


def frames_of(workdir, video_id):
    return FRAME.read(tables(workdir, "extract"), videos=[video_id])


def extract_outcomes(workdir):
    return {v: o for path in tables(workdir, "extract") for v, o in video_outcomes(path).items()}


def video_files(workdir):
    """The video files under the download folders and the download cache."""
    results = workdir / "results"
    return sorted(p.relative_to(workdir).as_posix()
                  for root in (results / "download", results / ".cache" / "download") if root.exists()
                  for p in root.rglob("*") if p.is_file() and p.suffix not in (".parquet", ".json"))


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, http_server, videos):
    """One run over good, duplicated, dead and invalid inputs, sampling by time."""
    workdir = tmp_path_factory.mktemp("run")
    (workdir / "lists").mkdir()
    (workdir / "lists" / "more.txt").write_text(
        "# second list\n"
        f"{http_server.url('h264.mp4')}#again\n"  # the same video as urls[0]
        f"{http_server.url('missing/gone.mp4')}\n"
        f"{http_server.url('flaky/vfr.mp4')}\n"
    )
    config = {
        "urls": [http_server.url("h264.mp4"), http_server.url("vp9.webm"), http_server.url("page.html"),
                 "ftp://example.com/x.mp4"],
        "url_files": ["lists/more.txt"],
        "local_videos": [str(videos["rotated.mp4"]), str(videos["truncated.mp4"])],
        "download": FAST_DOWNLOADS,
        "extract": {"strategy": "time", "every_seconds": 0.5, "image_format": "png"},
        "dedup": {"enabled": False},  # model stages have their own tests
    }
    run_workflow(workdir, config)
    return workdir, config


def test_summary_counts_and_reasons(mixed_run, http_server):
    workdir, _ = mixed_run
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    assert summary["videos"] == {"total": 7, "ok": 4, "failed": 3, "duplicates_in_input": 1, "rejected_inputs": 1}
    failed = {f["location"]: f for f in summary["failed_videos"]}
    assert "HTTP Error 404" in failed[http_server.url("missing/gone.mp4")]["reason"]
    assert "Unsupported URL" in failed[http_server.url("page.html")]["reason"]
    assert failed[http_server.url("page.html")]["stage"] == "download"
    truncated = next(f for f in summary["failed_videos"] if f["location"].endswith("truncated.mp4"))
    assert truncated["stage"] == "extract" and "not a readable media file" in truncated["reason"]
    assert summary["rejected_inputs"][0]["input"] == "ftp://example.com/x.mp4"
    assert summary["frames"]["extracted"] > 0 and summary["stage_seconds"]["total"] > 0


def test_status_table_has_a_row_per_video(mixed_run, http_server):
    workdir, _ = mixed_run
    table = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")
    assert len(table) == 7
    gone = table.loc[video_id_for_url(http_server.url("missing/gone.mp4"))]
    assert gone["status"] == "failed" and gone["failed_stage"] == "download"
    flaky = table.loc[video_id_for_url(http_server.url("flaky/vfr.mp4"))]
    assert flaky["status"] == "extracted" and flaky["frames_extracted"] > 0
    assert set(table["status"]) == {"extracted", "failed"}


@pytest.mark.parametrize("name,url_path", [("h264.mp4", "h264.mp4"), ("vp9.webm", "vp9.webm"), ("vfr.mp4", "flaky/vfr.mp4")])
def test_manifests_hold_exactly_the_expected_frames(mixed_run, http_server, videos, name, url_path):
    workdir, config = mixed_run
    video_id = video_id_for_url(http_server.url(url_path))
    manifest = pq.read_table(workdir / "results" / "frames" / f"{video_id}.parquet").to_pandas()
    truth = decode_all(videos[name])
    options = ExtractOptions(**config["extract"])
    assert manifest["frame_index"].tolist() == expected_positions(truth, options)
    assert manifest["timestamp_s"].tolist() == pytest.approx([truth[i][0] for i in manifest["frame_index"]], abs=1e-6)
    assert all((workdir / p).is_file() for p in manifest["path"])
    record = json.loads((workdir / "results" / "videos" / f"{video_id}.info.json").read_text())
    assert record["status"] == "ok" and record["url"] == http_server.url(url_path)


def test_failed_videos_have_empty_manifests_and_logs(mixed_run, http_server):
    workdir, _ = mixed_run
    video_id = video_id_for_url(http_server.url("missing/gone.mp4"))
    assert pq.read_table(workdir / "results" / "frames" / f"{video_id}.parquet").num_rows == 0
    assert "HTTP Error 404" in (workdir / "logs" / "download" / f"{video_id}.log").read_text()


@pytest.mark.parametrize("strategy", [{"strategy": "interval", "every_n_frames": 10}, {"strategy": "keyframe"}])
def test_changing_the_strategy_reextracts_without_redownloading(mixed_run, http_server, videos, strategy):
    workdir, config = mixed_run
    video_id = video_id_for_url(http_server.url("h264.mp4"))
    record = workdir / "results" / "videos" / f"{video_id}.info.json"
    before = record.stat().st_mtime_ns
    changed = {**config, "extract": {**strategy, "image_format": "png"}}
    run_workflow(workdir, changed)
    assert record.stat().st_mtime_ns == before
    manifest = pq.read_table(workdir / "results" / "frames" / f"{video_id}.parquet").to_pandas()
    expected = expected_positions(decode_all(videos["h264.mp4"]), ExtractOptions(**changed["extract"]))
    assert manifest["frame_index"].tolist() == expected
    frames = sorted(f for f in os.listdir(workdir / "results" / "frames" / video_id) if not f.startswith("."))
    assert frames == [f"{i:08d}.png" for i in expected]  # no frames left from the earlier strategy


def test_rerun_with_nothing_changed_does_nothing(mixed_run):
    workdir, config = mixed_run
    run_workflow(workdir, config)  # back to the fixture's strategy after the tests above
    proc = run_workflow(workdir, config, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_keep_videos_false_deletes_videos_and_reextraction_fetches_them_again(tmp_path, http_server, videos):
    local = tmp_path / "mine.mp4"
    local.write_bytes(videos["odd.mp4"].read_bytes())
    config = {"urls": [http_server.url("h264.mp4")], "local_videos": [str(local)], "keep_videos": False,
              "download": FAST_DOWNLOADS, "dedup": {"enabled": False}}
    run_workflow(tmp_path, config)
    videos_dir = tmp_path / "results" / "videos"
    assert sorted(p.suffix for p in videos_dir.iterdir() if not p.name.startswith(".")) == [".json", ".json"]
    assert local.is_file()  # the user's own file is never touched
    url_id = video_id_for_url(http_server.url("h264.mp4"))
    record = videos_dir / f"{url_id}.info.json"
    before = record.stat().st_mtime_ns
    run_workflow(tmp_path, {**config, "extract": {"strategy": "keyframe"}})
    assert record.stat().st_mtime_ns == before  # the download job did not run again
    manifest = pq.read_table(tmp_path / "results" / "frames" / f"{url_id}.parquet").to_pandas()
    assert manifest["frame_index"].tolist() == [0, 30, 60]
    summary = json.loads((tmp_path / "results" / "pipeline_result.json").read_text())
    assert summary["videos"]["failed"] == 0
    assert not any(p.suffix == ".mp4" for p in videos_dir.iterdir())


def test_editing_a_list_above_a_url_does_not_rerun_its_download(tmp_path, http_server):
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{http_server.url('h264.mp4')}\n{http_server.url('vp9.webm')}\n")
    config = {"url_files": ["urls.txt"], "download": FAST_DOWNLOADS, "dedup": {"enabled": False}}
    run_workflow(tmp_path, config)
    listing.write_text(f"# kitchen videos\n{http_server.url('odd.mp4')}\n" + listing.read_text())
    proc = run_workflow(tmp_path, config, "-n", "--quiet", "rules")
    counts = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) == 2}
    assert counts["download"] == "1" and counts["extract"] == "1"  # only the new video
    run_workflow(tmp_path, config)
    status = pd.read_csv(tmp_path / "results" / "status.tsv", sep="\t").set_index("location")
    assert status.loc[http_server.url("vp9.webm"), "origin"] == "urls.txt:4"  # origins follow the list
