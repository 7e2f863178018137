"""Filter and dedup stages through the real workflow, with tiny checkpoints by path."""

import re

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_DOWNLOADS, run_workflow
from video_miner.ids import video_id_for_url
from video_miner.stages import SHARD_PATTERN
from video_miner.tables.frame import FRAME

pytestmark = pytest.mark.slow
CLASSES = ["a photo of a cat", "a photo of a face"]


def model_config(server, tiny_models):
    return {
        "urls": [server.url("static_then_cut.mp4"), server.url("static_then_cut.mp4?mirror=1"),
                 server.url("cat_pan.mp4"), server.url("rocket_zoom.mp4")],
        "download": FAST_DOWNLOADS,
        "extract": {"strategy": "time", "every_seconds": 0.5},
        "models": {"device": "cpu", "batch_size": 4},
        "shard_size": 2,
        "filter": {"enabled": True, "model": str(tiny_models["siglip2"]), "classes": CLASSES, "threshold": 0.0},
        "dedup": {"model": str(tiny_models["dinov2"]), "threshold": 0.99},
        # The mirror is the same file: kept, so the frame stages see a cross-video duplicate.
        "video_dedup": {"keep_duplicates": True},
        # The frames' WebDataset too, a few frames a tar: packed frames must give the same tars.
        "export": {"webdataset": True, "webdataset_max_frames": 4},
    }


@pytest.fixture(scope="module")
def model_run(tmp_path_factory, http_server, scene_videos, tiny_models):
    workdir = tmp_path_factory.mktemp("model_run")
    config = model_config(http_server, tiny_models)
    run_workflow(workdir, config)
    return workdir, config


def ids(server):
    return {name: video_id_for_url(server.url(name))
            for name in ("static_then_cut.mp4", "static_then_cut.mp4?mirror=1", "cat_pan.mp4", "rocket_zoom.mp4")}


def unique_frames(workdir):
    return pd.read_parquet(workdir / "results" / "dedup" / "unique_frames.parquet")


def shard_tables(workdir, stage):
    """A per-shard stage's tables: results/<stage>/<shard>.parquet."""
    paths = sorted((workdir / "results" / stage).glob("*.parquet"))
    assert all(re.fullmatch(SHARD_PATTERN, p.stem) for p in paths)
    return paths


def test_filter_tables_score_every_frame_for_every_class(model_run):
    workdir, _ = model_run
    paths = shard_tables(workdir, "filter")
    assert len(paths) == 2  # 4 videos in shards of 2
    assert [p.stem for p in paths] == [p.stem for p in shard_tables(workdir, "extract")]
    tables = [pd.read_parquet(p) for p in paths]
    for table in tables:
        assert [c for c in table.columns if c.startswith("score:")] == [f"score:{c}" for c in CLASSES]
        assert {"best_class", "best_score", "kept", "reason"} <= set(table.columns)
        assert table["kept"].all() and (table["reason"] == "").all()  # threshold 0
    assert sum(len(t) for t in tables) == 2 * 10 + 2 * 4  # two 5 s and two 2 s clips, a frame per 0.5 s


def test_each_shard_job_loads_its_model_once(model_run):
    workdir, _ = model_run
    for stage in ("filter", "embed"):
        logs = sorted((workdir / "logs" / stage).glob("*.log"))
        assert [log.stem for log in logs] == [p.stem for p in shard_tables(workdir, stage)]  # logs/<rule>/<shard>.log
        assert len(logs) == 2
        assert all(log.read_text().count("loading model") == 1 for log in logs)


def test_static_stretch_collapses_to_few_frames(model_run, http_server):
    workdir, _ = model_run
    video = ids(http_server)["static_then_cut.mp4"]
    shard = next(p for p in (workdir / "results" / "embed").iterdir() if (p / f"{video}.faiss").exists())
    frames = FRAME.read(shard.with_suffix(".parquet"))
    static = frames[(frames["video_id"] == video) & (frames["timestamp_s"] < 4.0)]
    assert len(static) == 8 and static["kept"].sum() == 1 and static["kept"].iloc[0]
    assert static["frame_index"].iloc[0] == 0 and (static["duplicate_of"].dropna() == 0).all()
    assert static["duplicate_of"].notna().sum() == 7
    assert static["reason"].iloc[1:].str.startswith("near-duplicate of frame 0 ").all()
    # embeddings.npy is aligned with the table's rows
    assert len(np.load(shard / "embeddings.npy")) == len(frames)


def test_the_same_video_under_two_urls_leaves_no_cross_video_duplicate(model_run, http_server):
    workdir, _ = model_run
    unique = unique_frames(workdir)
    video_ids = ids(http_server)
    kept_by_video = unique[unique["kept"]].groupby("video_id").size()
    copies = [video_ids["static_then_cut.mp4"], video_ids["static_then_cut.mp4?mirror=1"]]
    assert sorted(kept_by_video.reindex(copies, fill_value=0).tolist())[0] == 0
    dropped = unique[unique["video_id"] == max(copies)]
    assert not dropped["kept"].any() and dropped["duplicate_of"].str.startswith(min(copies) + "/").all()
    assert (dropped["similarity"] > 0.99).all()
    assert dropped["reason"].str.startswith("near-duplicate of " + min(copies) + "/").all()


def test_different_videos_keep_their_frames(model_run, http_server):
    workdir, _ = model_run
    unique = unique_frames(workdir)
    video_ids = ids(http_server)
    for name in ("cat_pan.mp4", "rocket_zoom.mp4"):
        rows = unique[unique["video_id"] == video_ids[name]]
        assert rows["kept"].sum() >= 1
        assert rows["duplicate_of"].dropna().str.startswith(video_ids[name]).all()


def test_summary_reports_the_frame_funnel(model_run, http_server):
    import json

    workdir, _ = model_run
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    frames = summary["frames"]
    assert frames["extracted"] == frames["passed_filter"] == 28
    assert frames["unique"] == int(unique_frames(workdir)["kept"].sum()) < 20
    embedded = FRAME.read(shard_tables(workdir, "embed"))
    assert frames["unique"] <= frames["unique_in_video"] == int(embedded["kept"].sum()) < 28
    assert frames["with_detections"] is None  # detection is off
    assert [(s["stage"], s["count"]) for s in summary["funnel"]] == [
        ("download", 4), ("probe", 4), ("video_dedup", 4), ("extract", 28), ("filter", 28), ("embed", frames["unique_in_video"]),
        ("dedup", frames["unique"])]
    # the mirror is an exact copy of the smaller id, recorded but kept (keep_duplicates)
    copies = sorted([ids(http_server)["static_then_cut.mp4"], ids(http_server)["static_then_cut.mp4?mirror=1"]])
    videos = pd.read_parquet(workdir / "results" / "metadata" / "videos.parquet").set_index("video_id")
    assert videos.loc[copies[1], "duplicate_of"] == copies[0] and videos.loc[copies[1], "duplicate_distance"] == 0
    assert videos["duplicate_of"].notna().sum() == 1
    # a kept duplicate is in the split of its original: one group, keyed by the smaller id (here its frames
    # are all cross-video duplicates too, so none of them reaches the exports)
    splits = pd.read_parquet(workdir / "results" / "splits" / "videos.parquet").set_index("video_id")
    assert splits.loc[copies, "group"].tolist() == [copies[0]] * 2
    assert splits.loc[copies[1], "split"] == splits.loc[copies[0], "split"]
    assert summary["splits"]["groups"] == splits.loc[splits["frames"] > 0, "group"].nunique() <= 3
    assert sum(summary["splits"]["frames"].values()) == frames["unique"]
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t")
    # every video went through every enabled stage
    assert set(status["status"]) == {"complete"} and status["frames_unique"].sum() == frames["unique"]
    assert status["frames_unique_in_video"].sum() == frames["unique_in_video"]


def test_kept_set_is_independent_of_sharding_parallelism_and_packing(model_run, tmp_path, http_server, tiny_models):
    """Other shards, one core and packed frames (extract.storage tar, small tars so a shard
    has several): the same tables apart from frame paths, the same dataset export and
    WebDataset (frames and metadata; tests/test_frame_webdataset.py: the same tar bytes)."""
    from video_miner import framestore

    workdir, config = model_run
    packed = {**config, "shard_size": 3, "extract": {**config["extract"], "storage": "tar", "tar_mb": 0.02}}
    run_workflow(tmp_path, packed, "--cores", "1")
    columns = ["frame_id", "kept", "duplicate_of"]
    pd.testing.assert_frame_equal(unique_frames(workdir)[columns], unique_frames(tmp_path)[columns])
    for stage in ("extract", "filter", "embed"):
        loose, tarred = (FRAME.read(shard_tables(run, stage)).sort_values("frame_id", ignore_index=True)
                         for run in (workdir, tmp_path))
        pd.testing.assert_frame_equal(loose.drop(columns="path"), tarred.drop(columns="path"))
        assert tarred["path"].map(framestore.is_packed).all() and not loose["path"].map(framestore.is_packed).any()
    assert len(list((tmp_path / "results" / "extract").glob("*/*.tar"))) > 2
    assert not list((tmp_path / "results" / "extract").glob("*/*/*.jpg"))  # no loose frame anywhere
    # The same exports, byte for byte: the run id leaves out the storage and the shard size.
    exported = [sorted(p.relative_to(run / "results" / "dataset") for p in (run / "results" / "dataset").rglob("*")
                       if p.is_file()) for run in (workdir, tmp_path)]
    assert exported[0] == exported[1] and exported[0]
    for name in exported[0]:  # the same image bytes, metadata and manifest
        assert (workdir / "results" / "dataset" / name).read_bytes() == (
            tmp_path / "results" / "dataset" / name).read_bytes(), name
    samples = [tar_samples(run / "results" / "export" / "webdataset") for run in (workdir, tmp_path)]
    assert samples[0] == samples[1] and len({tar for tar, _ in samples[0]}) > 1


def tar_samples(root):
    """(tar, member, bytes) of every WebDataset tar under ``root``."""
    import tarfile

    out = []
    for path in sorted(root.rglob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                out.append((path.relative_to(root).as_posix(), (member.name, tar.extractfile(member).read())))
    return out


def test_appending_a_url_reruns_its_shard_and_the_run_wide_steps(model_run, http_server):
    workdir, config = model_run
    grown = {**config, "urls": [*config["urls"], http_server.url("vp9.webm")]}
    proc = run_workflow(workdir, grown, "-n", "--quiet", "rules")
    counts = {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    # the exports that cover every video (splits, dataset, webdataset, report plots) follow the
    # cross-video step; the model jobs of every shard read video_dedup's table (which copies to
    # skip), so they rerun too, taking every video they had from their per-video caches (no model
    # is loaded for them)
    assert counts == {"download": 1, "probe": 1, "video_dedup": 1, "extract": 1, "filter": 3, "embed": 3,
                      "dedup": 1, "splits": 1, "summary": 1, "dataset": 1, "webdataset": 1, "report_plots": 1,
                      "run_config": 1, "all": 1, "total": 18}


def test_phash_backend_makes_the_same_decisions_on_exact_duplicates(model_run, tmp_path, http_server, tiny_models):
    workdir, config = model_run
    phash = {**config, "dedup": {"backend": "phash", "phash_max_distance": 4}, "filter": {"enabled": False}}
    run_workflow(tmp_path, phash)
    copies = [ids(http_server)["static_then_cut.mp4"], ids(http_server)["static_then_cut.mp4?mirror=1"]]
    for run in (workdir, tmp_path):
        unique = unique_frames(run)
        mirror = unique[unique["video_id"] == max(copies)]
        assert len(mirror) > 0 and not mirror["kept"].any()
        assert mirror["duplicate_of"].str.startswith(min(copies)).all()
    assert not (tmp_path / "results" / "filter").exists()
