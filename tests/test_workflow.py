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


def status_frames(workdir, video_id):
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")
    return status.loc[video_id, "frames_extracted"]


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
    assert summary["videos"] == {"total": 7, "ok": 4, "failed": 3, "rejected": 0, "duplicates_in_input": 1,
                                  "rejected_inputs": 1}
    assert summary["format_version"] == 2 and summary["stages"] == ["download", "probe", "video_dedup", "extract"]
    failed = {f["location"]: f for f in summary["failed_videos"]}
    assert "HTTP Error 404" in failed[http_server.url("missing/gone.mp4")]["reason"]
    assert "not a video: the server sent an HTML page" in failed[http_server.url("page.html")]["reason"]
    assert failed[http_server.url("page.html")]["stage"] == "download"
    truncated = next(f for f in summary["failed_videos"] if f["location"].endswith("truncated.mp4"))
    assert truncated["stage"] == "probe" and "not a readable media file" in truncated["reason"]
    assert summary["rejected_inputs"][0]["input"] == "ftp://example.com/x.mp4"
    assert summary["frames"]["extracted"] > 0 and summary["stage_seconds"]["total"] > 0
    assert summary["frames"]["extracted"] == len(FRAME.read(tables(workdir, "extract")))


def test_without_detection_the_splits_and_the_imagefolder_are_written_and_no_box_export(mixed_run):
    workdir, _ = mixed_run
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    splits = summary["splits"]
    # the 4 good videos, none a copy of another, no cross-video dedup: 4 groups of one
    assert splits["groups"] == 4 and sum(splits["videos"].values()) == 4
    assert sum(splits["frames"].values()) == summary["frames"]["extracted"]
    dataset = workdir / "results" / "dataset"
    metadata = {p.parent.name: pd.read_parquet(p) for p in dataset.glob("*/metadata.parquet")}
    assert metadata and set(metadata) <= {"train", "val", "test"}
    assert {name: len(rows) for name, rows in metadata.items()} == {n: c for n, c in splits["frames"].items() if c}
    assert all((dataset / name / f).is_file() for name, rows in metadata.items() for f in rows["file_name"])
    assert "objects" not in next(iter(metadata.values())).columns
    assert not (workdir / "results" / "detections").exists() and not (workdir / "results" / "export").exists()


def test_status_table_has_a_row_per_video(mixed_run, http_server):
    workdir, _ = mixed_run
    table = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")
    assert len(table) == 7
    gone = table.loc[video_id_for_url(http_server.url("missing/gone.mp4"))]
    assert gone["status"] == "failed" and gone["failed_stage"] == "download"
    flaky = table.loc[video_id_for_url(http_server.url("flaky/vfr.mp4"))]
    assert flaky["status"] == "complete" and flaky["frames_extracted"] > 0
    assert set(table["status"]) == {"complete", "failed"}


def test_the_video_table_reads_in_pandas_and_duckdb_and_status_renders_it(mixed_run, http_server):
    import duckdb

    workdir, _ = mixed_run
    metadata = workdir / "results" / "metadata"
    table = pd.read_parquet(metadata / "videos.parquet").set_index("video_id")
    assert len(table) == 7 and table.index.is_unique
    rotated = table[table["location"].str.endswith("rotated.mp4")].iloc[0]
    assert (rotated["rotation"], rotated["width"], rotated["height"], rotated["codec"]) == (90, 240, 320, "h264")
    vp9 = table.loc[video_id_for_url(http_server.url("vp9.webm"))]
    assert (vp9["container"], vp9["codec"], vp9["frame_count"], vp9["has_audio"]) == ("matroska,webm", "vp9", 40, False)
    assert table.loc[video_id_for_url(http_server.url("flaky/vfr.mp4")), "is_vfr"]
    assert table["duplicate_of"].isna().all()
    assert json.loads((metadata / "duplicates.json").read_text()) == {}
    # The same rows from the three files through DuckDB.
    for name, reader in (("videos.parquet", "read_parquet"), ("videos.csv", "read_csv"),
                         ("videos.jsonl", "read_json")):
        rows = duckdb.sql(f"select video_id, status, codec, width, frames_extracted from {reader}('{metadata / name}') "
                          "order by video_id").fetchall()
        assert [r[0] for r in rows] == sorted(table.index)
        assert {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}[vp9.name] == ("complete", "vp9", 160, vp9["frames_extracted"])
    per_codec = duckdb.sql(f"select codec, count(*) from read_parquet('{metadata / 'videos.parquet'}') "
                           "where status = 'complete' group by codec order by codec").fetchall()
    assert per_codec == [("h264", 3), ("vp9", 1)]
    # status.tsv is the same table, some of its columns.
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")
    shared = [c for c in status.columns if c in table.columns]
    assert shared == status.columns.tolist()
    assert status["status"].to_dict() == table["status"].to_dict()
    assert status["width"].dropna().astype(int).to_dict() == table["width"].dropna().astype(int).to_dict()
    assert status["duration_s"].dropna().to_dict() == pytest.approx(table["duration_s"].dropna().to_dict())


@pytest.mark.parametrize("name,url_path", [("h264.mp4", "h264.mp4"), ("vp9.webm", "vp9.webm"), ("vfr.mp4", "flaky/vfr.mp4")])
def test_manifests_hold_exactly_the_expected_frames(mixed_run, http_server, videos, name, url_path):
    workdir, config = mixed_run
    video_id = video_id_for_url(http_server.url(url_path))
    shard, record = download_row(workdir, video_id)
    assert record["kept"] and record["reason"] == "" and record["source"] == "url"
    assert record["location"] == http_server.url(url_path)
    assert Path(record["file"]).parent == Path("results", "download", shard) and (workdir / record["file"]).is_file()
    frames = frames_of(workdir, video_id)
    truth = decode_all(videos[name])
    options = ExtractOptions(**config["extract"])
    assert frames["frame_index"].tolist() == expected_positions(truth, options)
    assert frames["timestamp_s"].tolist() == pytest.approx([truth[i][0] for i in frames["frame_index"]], abs=1e-6)
    assert frames["kept"].all() and (frames["reason"] == "").all()
    for row in frames.itertuples():
        # The frames of a video lie in its shard's folder: results/extract/<shard>/<video>/.
        assert Path(row.path).parent == Path("results", "extract", shard, video_id)
        np.testing.assert_array_equal(np.asarray(Image.open(workdir / row.path)), truth[row.frame_index][3])
    outcome = extract_outcomes(workdir)[video_id]
    assert outcome["ok"] and outcome["frames_extracted"] == len(frames) == status_frames(workdir, video_id)


def test_failed_videos_have_empty_manifests_and_logs(mixed_run, http_server, videos):
    workdir, _ = mixed_run
    video_id = video_id_for_url(http_server.url("missing/gone.mp4"))
    shard, record = download_row(workdir, video_id)
    assert not record["kept"] and "HTTP Error 404" in record["reason"] and pd.isna(record["file"])
    assert record["location"] == http_server.url("missing/gone.mp4")
    assert len(frames_of(workdir, video_id)) == 0
    assert video_id not in extract_outcomes(workdir)  # extraction only sees the kept downloads
    assert "HTTP Error 404" in (workdir / "logs" / "download" / f"{shard}.log").read_text()
    # A video that downloads but cannot be probed: kept false in the probe table with its
    # reason, never extracted.
    probed = VIDEO.read(tables(workdir, "probe")).set_index("video_id")
    truncated = probed.index[~probed["kept"]].item()
    shard, record = download_row(workdir, truncated)
    assert record["kept"] and record["source"] == "local" and record["location"].endswith("truncated.mp4")
    assert "not a readable media file" in probed.loc[truncated, "reason"]
    assert truncated not in extract_outcomes(workdir) and len(frames_of(workdir, truncated)) == 0
    assert "not a readable media file" in (workdir / "logs" / "probe" / f"{shard}.log").read_text()


@pytest.mark.parametrize("strategy", [{"strategy": "interval", "every_n_frames": 10}, {"strategy": "keyframe"}])
def test_changing_the_strategy_reextracts_without_redownloading(mixed_run, http_server, videos, strategy):
    workdir, config = mixed_run
    video_id = video_id_for_url(http_server.url("h264.mp4"))
    shard, _ = download_row(workdir, video_id)
    downloads = {p: p.stat().st_mtime_ns for p in tables(workdir, "download")}
    extracted = (workdir / "results" / "extract" / f"{shard}.parquet").stat().st_mtime_ns
    hits = dict(http_server.hits)
    changed = {**config, "extract": {**strategy, "image_format": "png"}}
    run_workflow(workdir, changed)
    assert {p: p.stat().st_mtime_ns for p in tables(workdir, "download")} == downloads  # no download job ran
    assert dict(http_server.hits) == hits  # and nothing was fetched
    assert (workdir / "results" / "extract" / f"{shard}.parquet").stat().st_mtime_ns != extracted
    frames = frames_of(workdir, video_id)
    expected = expected_positions(decode_all(videos["h264.mp4"]), ExtractOptions(**changed["extract"]))
    assert frames["frame_index"].tolist() == expected
    folder = workdir / "results" / "extract" / shard / video_id
    assert sorted(f for f in folder.iterdir() if not f.name.startswith(".")) == [folder / f"{i:08d}.png" for i in expected]
    # no frames left from the earlier strategy


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
    before = http_server.hits["/h264.mp4"]
    run_workflow(tmp_path, config)
    one_download = http_server.hits["/h264.mp4"] - before  # the requests one download makes
    assert one_download > 0
    download = tmp_path / "results" / "download"
    assert len(tables(tmp_path, "download")) == 2  # one shard per list
    # The tables stay; the shards' video folders are gone, and no copy is kept in the cache.
    assert sorted(p.name for p in download.iterdir()) == sorted(p.name for p in tables(tmp_path, "download"))
    assert video_files(tmp_path) == []
    assert local.read_bytes() == videos["odd.mp4"].read_bytes()  # the user's own file is never touched
    url_id = video_id_for_url(http_server.url("h264.mp4"))
    assert download_row(tmp_path, url_id)[1]["kept"]
    fetched = http_server.hits["/h264.mp4"]
    run_workflow(tmp_path, {**config, "extract": {"strategy": "keyframe"}})
    # Extraction reran, so the shard's download reran and fetched the video again.
    assert http_server.hits["/h264.mp4"] == fetched + one_download
    assert frames_of(tmp_path, url_id)["frame_index"].tolist() == [0, 30, 60]
    summary = json.loads((tmp_path / "results" / "pipeline_result.json").read_text())
    assert summary["videos"]["failed"] == 0
    assert video_files(tmp_path) == []
    assert local.read_bytes() == videos["odd.mp4"].read_bytes()


def test_editing_a_list_above_a_url_does_not_rerun_its_download(tmp_path, http_server):
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{http_server.url('h264.mp4')}\n{http_server.url('vp9.webm')}\n")
    # A second list: its shard must not rerun at all when urls.txt changes.
    config = {"url_files": ["urls.txt"], "urls": [http_server.url("vfr.mp4")], "download": FAST_DOWNLOADS,
              "dedup": {"enabled": False}}
    before = http_server.hits["/vfr.mp4"]
    run_workflow(tmp_path, config)
    one_download = http_server.hits["/vfr.mp4"] - before  # the requests one download makes
    assert one_download > 0
    assert len(tables(tmp_path, "download")) == 2
    listing.write_text(f"# kitchen videos\n{http_server.url('odd.mp4')}\n" + listing.read_text())
    proc = run_workflow(tmp_path, config, "-n", "--quiet", "rules")
    counts = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) == 2}
    # only the edited list's shard (and the run-wide grouping of the videos)
    assert (counts["download"], counts["probe"], counts["extract"], counts["video_dedup"]) == ("1", "1", "1", "1")
    other, _ = download_row(tmp_path, video_id_for_url(http_server.url("vfr.mp4")))
    other_tables = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / stage / f"{other}.parquet"
                                                      for stage in ("download", "probe", "extract"))}
    hits = dict(http_server.hits)
    run_workflow(tmp_path, config)
    assert {p: p.stat().st_mtime_ns for p in other_tables} == other_tables  # the other list's shard did not rerun
    # The shard job reran for the new video; the videos it already had were not fetched again.
    fetched = {path: n - hits.get(path, 0) for path, n in http_server.hits.items() if n != hits.get(path, 0)}
    assert fetched == {"/odd.mp4": one_download}
    status = pd.read_csv(tmp_path / "results" / "status.tsv", sep="\t").set_index("location")
    assert status.loc[http_server.url("vp9.webm"), "origin"] == "urls.txt:4"  # origins follow the list
    assert set(status["status"]) == {"complete"} and len(status) == 4
    shard, _ = download_row(tmp_path, video_id_for_url(http_server.url("odd.mp4")))
    assert download_row(tmp_path, video_id_for_url(http_server.url("h264.mp4")))[0] == shard
    folder = tmp_path / "results" / "download" / shard
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        f"{video_id_for_url(http_server.url(name))}.{name.split('.')[1]}" for name in ("h264.mp4", "vp9.webm", "odd.mp4"))
