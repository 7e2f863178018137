"""Tar archives as inputs: member names and the CSV, archives read from disk and fetched
from a local S3 server (moto) and the loopback HTTP server, and the damaged ones."""

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from conftest import S3_ENV
from video_miner.archives import (
    ArchiveSettings,
    match_provenance,
    parse_member_name,
    parse_time,
    read_clip_csv,
    safe_member_name,
)
from video_miner.defaults import default
from video_miner.download import DownloadOptions, download_shard
from video_miner.ids import archive_video_id, member_video_id, normalize_location
from video_miner.tables.video import VIDEO


@pytest.mark.parametrize("text, seconds", [
    ("12", 12.0), ("12.5", 12.5), ("1:02.250", 62.25), ("0:01:02.250", 62.25), ("1:00:00", 3600.0),
    ("01:00:00.001", 3600.001), ("75:30", 4530.0),
])
def test_times_in_seconds_or_hours_minutes_seconds(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:75", "1:02:61", "1:60:00", "-3", "1:2:3:4", "1,5"])
def test_times_that_are_not_times(text):
    assert parse_time(text) is None


@pytest.mark.parametrize("name, parsed", [
    ("dQw4w9WgXcQ (12.5-15).mp4", ("dQw4w9WgXcQ", 12.5, 15.0)),
    ("clips/-abc_DEF-1 (0:00:01.500-0:00:04.000).webm", ("-abc_DEF-1", 1.5, 4.0)),
    ("a (b) (1-2).mp4", ("a (b)", 1.0, 2.0)),
    ("video.mp4", None),
    ("x (5-2).mp4", None),  # ends before it starts
    ("x (a-b).mp4", None),
    ("x (1-2)", None),  # no extension
    (" (1-2).mp4", None),  # no source id
])
def test_member_names(name, parsed):
    assert parse_member_name(name) == parsed


@pytest.mark.parametrize("name, safe", [
    ("clips/a (1-2).mp4", "clips/a (1-2).mp4"),
    ("../../etc/x.mp4", "etc/x.mp4"),
    ("/abs/x.mp4", "abs/x.mp4"),
    ("./a/./b/../c.mp4", "a/b/c.mp4"),
    ("..\\..\\win.mp4", "win.mp4"),
    ("evil\x1b[2J\n.mp4", "evil\\x1b[2J\\n.mp4"),
    ("/", None),
    ("../..", None),
])
def test_member_names_are_cleaned_before_they_are_recorded(name, safe):
    assert safe_member_name(name) == safe


def test_ids_are_path_safe_and_distinct_per_archive_and_raw_name():
    archive = archive_video_id("s3://b/shard-0.tar")
    ids = {member_video_id(archive, n) for n in ("a.mp4", "./a.mp4", "../a.mp4")}
    assert len(ids) == 3 and all(i.startswith(archive + "-") for i in ids)
    assert archive != archive_video_id("s3://b/shard-1.tar")
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for i in ids)


def test_locations_keep_urls_and_refuse_credentials(tmp_path):
    assert normalize_location("hf://datasets/org/name/data/shard-000.tar ") == "hf://datasets/org/name/data/shard-000.tar"
    assert normalize_location("a/../b.tar", str(tmp_path)) == "b.tar"
    with pytest.raises(ValueError, match="credentials"):
        normalize_location("s3://AKIA:secret@bucket/x.tar")


def test_csv_matches_members_by_source_id_and_span(tmp_path):
    csv = tmp_path / "clips.csv"
    csv.write_text("video_id,start,end,duration\nabc,1.5,4.0,2.5\nabc,0:00:10.000,0:00:12.000,2\n"
                   "other,0,1,1\nbroken,x,y,z\n")
    spans = read_clip_csv(str(csv), {"abc", "broken", "absent"})
    assert spans == {"abc": [(1.5, 4.0), (10.0, 12.0)]}
    assert match_provenance("abc (0:00:01.500-0:00:04.000).mp4", spans, 0.01).__dict__ == {
        "source_video_id": "abc", "source_start_s": 1.5, "source_end_s": 4.0}
    assert match_provenance("abc (10.004-11.996).mp4", spans, 0.01).source_start_s == 10.0
    assert match_provenance("abc (10.5-12).mp4", spans, 0.01).source_video_id is None  # another span
    assert match_provenance("zzz (1.5-4).mp4", spans, 0.01).source_video_id is None  # not in the CSV
    assert match_provenance("plain.mp4", spans, 0.01).source_video_id is None


def test_a_csv_without_its_columns_says_which(tmp_path):
    from video_miner.archives import ArchiveError

    csv = tmp_path / "clips.csv"
    csv.write_text("id,from,to\nabc,1,2\n")
    with pytest.raises(ArchiveError, match="no column end, start, video_id"):
        read_clip_csv(str(csv), {"abc"})
    with pytest.raises(ArchiveError, match="not found"):
        read_clip_csv(str(tmp_path / "gone.csv"), {"abc"})


def test_archives_are_sources_of_their_own_shard_with_their_csv(tmp_path, monkeypatch):
    from video_miner.sources import ConfigError, archive_inputs, assign_shards, collect_videos, input_files

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.tar").write_bytes(b"")
    (tmp_path / "data" / "a.csv").write_text("video_id,start,end,duration\n")
    (tmp_path / "shards.txt").write_text("# shards\nhf://datasets/org/name/data/shard-000.tar\n"
                                         "s3://bucket/shard-001.tar\ns3://bucket/shard-001.tar\n")
    config = {"archives": {"inputs": [{"path": "data/a.tar", "csv": "data/a.csv"}, "data/gone.tar",
                                      "https://user:pw@host/x.tar"],
                           "lists": ["shards.txt"], "csv": "s3://bucket/clips.csv"}}
    collection = collect_videos(config, str(tmp_path))
    sources = {s.location: s for s in collection.videos.values()}
    assert list(sources) == ["data/a.tar", "data/gone.tar", "hf://datasets/org/name/data/shard-000.tar",
                             "s3://bucket/shard-001.tar"]
    assert {s.kind for s in sources.values()} == {"archive"} and collection.duplicates == 1
    assert (sources["data/a.tar"].csv, sources["data/gone.tar"].csv) == ("data/a.csv", "s3://bucket/clips.csv")
    assert sources["s3://bucket/shard-001.tar"].origin == "shards.txt:3"
    assert collection.rejected == [{"input": "https://host/x.tar", "origin": "archives.inputs[2]",
                                    "reason": "credentials in archive URLs are not accepted (they would end up in "
                                              "logs): https://host/x.tar; give them in the environment"}]
    shards = assign_shards(collection, 2)
    assert sorted(name.rsplit("-", 2)[0] for name in shards) == ["a_tar", "gone_tar", "shard-000_tar", "shard-001_tar"]
    assert all(len(ids) == 1 and name.endswith("-00000") for name, ids in shards.items())  # one archive, one shard
    monkeypatch.chdir(tmp_path)  # the workflow runs in its working directory
    assert archive_inputs(collection, collection.videos) == ["data/a.tar", "data/a.csv"]  # local, existing
    assert input_files(config, str(tmp_path)) == ["shards.txt"]
    # A rejected input is recorded (in the summary) without its credentials, URLs too.
    assert collect_videos({"urls": ["https://user:pw@host/a.mp4"]}, str(tmp_path)).rejected[0]["input"] == \
        "https://host/a.mp4"
    with pytest.raises(ConfigError, match="archives.lists: cannot read 'nope.txt'"):
        collect_videos({"archives": {"lists": ["nope.txt"]}}, str(tmp_path))


# --- archives built from the session's synthetic videos -------------------------------------


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_archive(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            add(tar, name, data)
    return path


@pytest.fixture(scope="module")
def clip_archive(tmp_path_factory, videos):
    """A clip archive (tar.gz) and its CSV: two described clips, one clip the CSV does not
    describe, a traversal name, a sidecar, a file named like a video that is none, and a
    symbolic link."""
    root = tmp_path_factory.mktemp("archives")
    members = {
        "clips/src1 (0-3).mp4": videos["h264.mp4"].read_bytes(),
        "clips/src2 (0:00:01.000-0:00:03.000).webm": videos["vp9.webm"].read_bytes(),
        "clips/src3 (5-6).mp4": videos["single_frame.mp4"].read_bytes(),  # not in the CSV
        "../../escape (1-2).mp4": videos["odd.mp4"].read_bytes(),
        "clips/src1 (0-3).json": b'{"caption": "a sidecar"}',
        "clips/page.mp4": videos["page.html"].read_bytes(),
    }
    path = root / "clips.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            add(tar, name, data)
        link = tarfile.TarInfo("clips/link.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    csv = root / "clips.csv"
    csv.write_text("video_id,start,end,duration\nsrc1,0.0,3.0,3\nsrc2,1,3,2\n")
    return path, csv, members


SETTINGS = ArchiveSettings(tuple(default("local_extensions")), {}, cleanup=True)


def run_shard(tmp_path, location, csv=None, settings=SETTINGS, options=None, keep_videos=True):
    source = {"video_id": archive_video_id(location), "kind": "archive", "location": location, "csv": csv}
    table, record = download_shard([source], tmp_path / "out", tmp_path / "cache",
                                   options or DownloadOptions(retries=2, retry_backoff_s=0.01),
                                   keep_videos=keep_videos, archives=settings)
    return table.to_pandas().set_index("video_id"), record


def by_title(rows):
    return rows.set_index(rows["title"].fillna("<archive>"))


def test_a_clip_archive_becomes_videos_with_their_provenance(tmp_path, clip_archive, videos):
    path, csv, members = clip_archive
    rows, record = run_shard(tmp_path, str(path), str(csv))
    rows = by_title(rows)
    assert sorted(rows.index) == ["escape (1-2)", "link", "page", "src1 (0-3)", "src2 (0:00:01.000-0:00:03.000)",
                                  "src3 (5-6)"]  # the sidecar is passed over
    assert set(rows["source"]) == {"archive"} and set(rows["archive"]) == {str(path)}
    src1, src2, src3 = rows.loc["src1 (0-3)"], rows.loc["src2 (0:00:01.000-0:00:03.000)"], rows.loc["src3 (5-6)"]
    assert (src1["source_video_id"], src1["source_start_s"], src1["source_end_s"]) == ("src1", 0.0, 3.0)
    assert (src2["source_video_id"], src2["source_start_s"], src2["source_end_s"]) == ("src2", 1.0, 3.0)
    assert src3["kept"] and src3[["source_video_id", "source_start_s", "source_end_s"]].isna().all()
    assert src1["location"] == f"{path}#clips/src1 (0-3).mp4"
    assert Path(src1["file"]).read_bytes() == videos["h264.mp4"].read_bytes()
    assert Path(src2["file"]).suffix == ".webm"
    # The traversal name is recorded cleaned and its file lies under an id in the shard folder.
    escape = rows.loc["escape (1-2)"]
    assert escape["kept"] and escape["location"].endswith("#escape (1-2).mp4")
    assert Path(escape["file"]).parent == tmp_path / "out" and Path(escape["file"]).name.startswith("tar-")
    assert not list(tmp_path.parent.rglob("escape*")) and not (tmp_path / "escape (1-2).mp4").exists()
    # Not a video: downloaded like any file, the probe fails it. A link is never followed.
    assert rows.loc["page", "kept"]
    assert not rows.loc["link", "kept"] and rows.loc["link", "reason"] == "not a regular file in the archive (symbolic link)"
    assert record == {"videos": 6, "ok": 5, "failed": 1}
    assert path.is_file()  # a local archive is read in place, never removed


def test_a_rerun_takes_the_members_from_the_cache(tmp_path, clip_archive, monkeypatch):
    path, csv, _ = clip_archive
    first, _ = run_shard(tmp_path, str(path), str(csv))
    import video_miner.archives as archives

    monkeypatch.setattr(archives, "read_members", lambda *a, **k: pytest.fail("the archive was read again"))
    again, _ = run_shard(tmp_path, str(path), str(csv))
    assert again.drop(columns="seconds").equals(first.drop(columns="seconds"))


def test_a_local_archive_replaced_since_is_read_again(tmp_path, videos):
    archive = build_archive(tmp_path / "a.tar", {"clip.mp4": videos["h264.mp4"].read_bytes()})
    first, _ = run_shard(tmp_path, str(archive))
    build_archive(archive, {"clip.mp4": videos["vp9.webm"].read_bytes()})
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    again, _ = run_shard(tmp_path, str(archive))
    assert Path(again.iloc[0]["file"]).read_bytes() == videos["vp9.webm"].read_bytes()


def damaged(tmp_path, videos):
    whole = build_archive(tmp_path / "whole.tar", {"a (0-1).mp4": videos["h264.mp4"].read_bytes(),
                                                  "b (0-1).mp4": videos["vfr.mp4"].read_bytes()})
    data = whole.read_bytes()
    first = 512 + -(-len(videos["h264.mp4"].read_bytes()) // 512) * 512  # header + padded data of member 1
    cases = {
        "cut inside the second member": data[: first + 512 + 100],
        "cut at a member boundary": data[:first],
        "garbage": b"\x00\x01not a tar at all" * 200,
        "gzip cut short": gzip.compress(data)[:-300],
        "empty": b"",
    }
    paths = {}
    for i, (name, body) in enumerate(cases.items()):
        (tmp_path / f"{i}.tar").write_bytes(body)
        paths[name] = str(tmp_path / f"{i}.tar")
    return paths


@pytest.mark.parametrize("case, reason, members", [
    ("cut inside the second member", "truncated archive", 2),
    ("cut at a member boundary", "ends without its end-of-archive blocks after 1 videos", 1),
    ("garbage", "corrupt archive", 0),
    ("gzip cut short", "truncated archive", 2),
    ("empty", "corrupt archive", 0),
])
def test_a_damaged_archive_is_recorded_and_what_was_read_before_stays(tmp_path, videos, case, reason, members):
    location = damaged(tmp_path, videos)[case]
    rows, _ = run_shard(tmp_path, location)
    archive = rows.loc[archive_video_id(location)]
    assert not archive["kept"] and reason in archive["reason"], archive["reason"]
    assert archive["location"] == location
    good = rows.drop(index=archive_video_id(location))
    assert len(good) == members
    if members:
        assert good.iloc[0]["kept"] and Path(good.iloc[0]["file"]).read_bytes() == videos["h264.mp4"].read_bytes()


def test_a_missing_archive_and_csv_are_recorded(tmp_path, clip_archive):
    rows, record = run_shard(tmp_path, str(tmp_path / "gone.tar"))
    assert rows["reason"].tolist() == [f"archive not found: {tmp_path / 'gone.tar'}"] and record["failed"] == 1
    path, _, _ = clip_archive
    rows, _ = run_shard(tmp_path / "b", str(path), str(tmp_path / "gone.csv"))
    archive = rows.loc[archive_video_id(str(path))]
    assert "cannot read CSV" in archive["reason"] and "not found" in archive["reason"]
    assert rows.drop(index=archive.name)["kept"].sum() == 5  # the members still go on


@pytest.fixture(scope="module")
def s3_shards(s3_server, videos):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                          aws_secret_access_key="testing-secret", region_name="us-east-1")
    client.create_bucket(Bucket="datasets")
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        add(tar, "000000.mp4", videos["vfr.mp4"].read_bytes())
        add(tar, "000000.json", b"{}")
        add(tar, "000001.mp4", videos["rotated.mp4"].read_bytes())
    client.put_object(Bucket="datasets", Key="ds/shard-000.tar", Body=body.getvalue())
    return client


def test_a_shard_is_fetched_from_s3_once_and_its_copy_removed(tmp_path, s3_server, s3_shards, videos, monkeypatch):
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    settings = ArchiveSettings(SETTINGS.extensions, {"s3": {"endpoint_url": s3_server}}, cleanup=True)
    rows, record = run_shard(tmp_path, "s3://datasets/ds/shard-000.tar", settings=settings)
    assert record == {"videos": 2, "ok": 2, "failed": 0}
    assert sorted(rows["title"]) == ["000000", "000001"]
    assert Path(rows.set_index("title").loc["000001", "file"]).read_bytes() == videos["rotated.mp4"].read_bytes()
    assert not list((tmp_path / "cache").glob(".*.tar*"))  # cleanup: the fetched copy is gone
    # Fetched once: a rerun finds every member in the cache, even with the object gone.
    s3_shards.copy_object(Bucket="datasets", Key="ds/moved.tar", CopySource="datasets/ds/shard-000.tar")
    s3_shards.delete_object(Bucket="datasets", Key="ds/shard-000.tar")
    try:
        again, _ = run_shard(tmp_path, "s3://datasets/ds/shard-000.tar", settings=settings)
        assert again["kept"].all() and len(again) == 2
        missing, _ = run_shard(tmp_path / "b", "s3://datasets/ds/shard-000.tar", settings=settings)
        assert missing["reason"].tolist() == ["archive not found: s3://datasets/ds/shard-000.tar"]
    finally:
        s3_shards.copy_object(Bucket="datasets", Key="ds/shard-000.tar", CopySource="datasets/ds/moved.tar")
    kept = ArchiveSettings(SETTINGS.extensions, {"s3": {"endpoint_url": s3_server}}, cleanup=False)
    run_shard(tmp_path / "c", "s3://datasets/ds/shard-000.tar", settings=kept)
    assert len(list((tmp_path / "c" / "cache").glob(".*.tar"))) == 1  # no cleanup: the copy stays


def test_a_shard_is_fetched_over_https_and_flaky_servers_are_retried(tmp_path, http_server, videos):
    build_archive(videos.root / "shard-http.tar", {"clip (0-2).mp4": videos["long.mp4"].read_bytes()})
    rows, record = run_shard(tmp_path, http_server.url("flaky/shard-http.tar"))
    assert record["ok"] == 1 and rows.iloc[0]["title"] == "clip (0-2)"
    assert http_server.hits["/flaky/shard-http.tar"] >= 3  # two 503s, then the archive
    missing, _ = run_shard(tmp_path / "b", http_server.url("missing/shard.tar"))
    assert missing.iloc[0]["reason"].startswith("archive not found") and not missing.iloc[0]["transient"]
    refused, _ = run_shard(tmp_path / "c", "http://127.0.0.1:9/shard.tar")  # retried, then recorded as retryable
    assert refused.iloc[0]["reason"].startswith("cannot fetch the archive: ConnectionRefusedError")
    assert refused.iloc[0]["transient"]


# --- one small run: a clip archive on disk, an S3 shard, an HTTPS shard, a corrupt one ------


@pytest.mark.slow
def test_archives_and_shards_through_the_workflow(tmp_path, s3_server, s3_shards, http_server, videos, clip_archive):
    import json

    import pandas as pd
    from click.testing import CliRunner

    from conftest import run_workflow
    from video_miner.cli import main

    path, csv, _ = clip_archive
    build_archive(videos.root / "shard-run.tar", {"000000.mp4": videos["vfr.mp4"].read_bytes()})
    (tmp_path / "corrupt.tar").write_bytes(b"not a tar" * 100)
    (tmp_path / "shards.txt").write_text(f"# the dataset's shards\ns3://datasets/ds/shard-000.tar\n"
                                         f"{http_server.url('shard-run.tar')}\ncorrupt.tar\n")
    mine = tmp_path / "mine" / "own.mp4"  # a local video, read where it is
    mine.parent.mkdir()
    mine.write_bytes(videos["vfr_offset.mp4"].read_bytes())
    config = {"archives": {"inputs": [{"path": str(path), "csv": str(csv)}], "lists": ["shards.txt"],
                           "storage_options": {"s3": {"endpoint_url": s3_server}}},
              "local_videos": ["mine"], "local_mode": "in_place",
              "extract": {"strategy": "time", "every_seconds": 1.0}, "dedup": {"enabled": False},
              "video_dedup": {"enabled": False}}
    run_workflow(tmp_path, config, env=S3_ENV)
    results = tmp_path / "results"
    assert len(list((results / "download").glob("*.parquet"))) == 5  # one shard per archive, and the folder's
    status = pd.read_csv(results / "status.tsv", sep="\t").set_index("title")
    assert status.loc["src1 (0-3)", "status"] == "complete" and status.loc["000001", "status"] == "complete"
    assert status.loc["000000", "status"].tolist() == ["complete", "complete"]  # one per shard
    assert status.loc["src3 (5-6)", "origin"] == "archives.inputs[0]"
    assert status.loc["page", "failed_stage"] == "probe"  # named like a video, is none
    corrupt = status[status["location"] == "corrupt.tar"].iloc[0]
    assert (corrupt["status"], corrupt["failed_stage"]) == ("failed", "download")
    assert corrupt["reason"].startswith("corrupt archive") and corrupt["origin"] == "shards.txt:4"
    summary = json.loads((results / "pipeline_result.json").read_text())
    assert {f["location"]: f["stage"] for f in summary["failed_videos"]} == {
        "corrupt.tar": "download", f"{path}#clips/page.mp4": "probe", f"{path}#clips/link.mp4": "download"}
    table = pd.read_parquet(results / "metadata" / "videos.parquet").set_index("title")
    assert table.loc["src2 (0:00:01.000-0:00:03.000)", ["source_video_id", "source_start_s", "source_end_s"]
                     ].tolist() == ["src2", 1.0, 3.0]
    assert pd.isna(table.loc["src3 (5-6)", "source_video_id"]) and table.loc["000001", "archive"] == \
        "s3://datasets/ds/shard-000.tar"
    dataset = pd.concat(pd.read_parquet(p) for p in (results / "dataset").glob("*/metadata.parquet"))
    src1 = dataset[dataset["title"] == "src1 (0-3)"]
    assert len(src1) and set(zip(src1["source_video_id"], src1["source_start_s"])) == {("src1", 0.0)}
    assert not list((results / ".cache").rglob(".*.tar"))  # cleanup: no fetched copy is left
    own = status.loc["own"]
    assert own["status"] == "complete" and own["frames_extracted"] > 0
    assert not [p for p in results.rglob("*.mp4") if p.stat().st_ino == mine.stat().st_ino]  # not linked
    assert not [p for p in results.rglob("*.mp4") if p.read_bytes() == mine.read_bytes()]  # nor copied
    listed = CliRunner().invoke(main, ["list", "--status", "failed", "-d", str(tmp_path)])
    assert "corrupt archive" in listed.output and "clips/link.mp4" in listed.output
    assert "Nothing to be done" in run_workflow(tmp_path, config, "-n", env=S3_ENV).stdout


def test_credentials_in_storage_options_are_refused(tmp_path):
    from video_miner.config import ConfigValidationError, check_config
    from video_miner.defaults import SCHEMA_PATH

    with pytest.raises(ConfigValidationError, match="archives.storage_options.s3: 'aws_secret_access_key' is not "
                                                    "allowed: credentials come from the environment"):
        check_config({"archives": {"storage_options": {"s3": {"endpoint_url": "http://x",
                                                               "aws_secret_access_key": "s"}}}}, SCHEMA_PATH, tmp_path)


def test_a_failed_runs_summary_counts_an_archives_members(tmp_path):
    from video_miner.sources import VideoSource
    from video_miner.summary import archive_members

    archive = archive_video_id("s3://b/shard.tar")
    sources = {archive: VideoSource(archive, "archive", "s3://b/shard.tar", "archives.inputs[0]", "s3://b/shard.tar"),
               "url-1": VideoSource("url-1", "url", "https://x/1.mp4", "urls[0]", "urls")}
    assert archive_members("shard_tar-abcdef-00000", [archive], sources, tmp_path) == [archive]  # not run yet
    table = tmp_path / "results" / "download" / "shard_tar-abcdef-00000.parquet"
    table.parent.mkdir(parents=True)
    members = [member_video_id(archive, n) for n in ("a.mp4", "b.mp4")]
    VIDEO.write(table, VIDEO.table([{"video_id": v, "kept": True, "reason": ""} for v in members]), {})
    assert sorted(archive_members("shard_tar-abcdef-00000", [archive], sources, tmp_path)) == sorted(members)
    assert archive_members("urls-abcdef-00000", ["url-1"], sources, tmp_path) == ["url-1"]
