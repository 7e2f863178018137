"""Downloads through the real yt-dlp against a loopback server."""

import json
import re

import pytest

from video_miner.download import DownloadOptions, download_url, ingest_local, ytdlp_params

FAST = DownloadOptions(retries=2, retry_backoff_s=0.01, socket_timeout_s=5)


def test_download_is_byte_identical_and_probed(http_server, videos, tmp_path):
    record = download_url(http_server.url("h264.mp4"), tmp_path, "vid", FAST)
    assert record["status"] == "ok", record
    assert (tmp_path / "vid.mp4").read_bytes() == videos["h264.mp4"].read_bytes()
    assert record["file"] == (tmp_path / "vid.mp4").as_posix()
    assert record["title"] == "h264" and record["filesize"] == videos["h264.mp4"].stat().st_size
    # What the file is belongs to the probe stage: one owner per field.
    assert not {"width", "height", "fps", "duration", "vcodec", "rotation"} & set(record)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vid.mp4"]  # no work folders left


def test_webm_keeps_its_container(http_server, tmp_path):
    record = download_url(http_server.url("vp9.webm"), tmp_path, "vid", FAST)
    assert record["status"] == "ok" and record["file"].endswith("vid.webm")


NOT_A_VIDEO = re.escape("not a video: the server sent an HTML page with no video yt-dlp can find")


@pytest.mark.parametrize(
    "path,reason",
    [("missing/clip.mp4", ".*HTTP Error 404.*"), ("page.html", NOT_A_VIDEO), ("login/clip.mp4", NOT_A_VIDEO),
     ("empty.mp4", "empty file")],
)
def test_permanent_failures_are_recorded_without_retrying(http_server, tmp_path, path, reason):
    slept = []
    record = download_url(http_server.url(path), tmp_path, "vid", FAST, sleep=slept.append)
    assert record["status"] == "failed" and re.fullmatch(reason, record["reason"]), record["reason"]
    assert record["transient"] is False and record["attempts"] == 1 and slept == []
    assert list(tmp_path.iterdir()) == []


def test_a_download_that_is_no_media_file_says_what_it_is(http_server, tmp_path):
    """What yt-dlp takes for a direct link but is not markup: the file itself says what it
    is, when the probe stage opens it."""
    from video_miner.probe import probe_video
    from video_miner.video import VideoError

    record = download_url(http_server.url("error.json"), tmp_path, "vid", FAST)
    with pytest.raises(VideoError, match="not a video: the file is JSON"):
        probe_video(record["file"])


def test_transient_errors_are_retried_with_backoff_until_success(http_server, videos, tmp_path):
    slept = []
    record = download_url(http_server.url("flaky/h264.mp4"), tmp_path, "vid", FAST, sleep=slept.append)
    assert record["status"] == "ok", record
    assert record["attempts"] == 3 and slept == [0.01, 0.02]
    assert (tmp_path / "vid.mp4").read_bytes() == videos["h264.mp4"].read_bytes()


def test_refused_connection_is_transient_and_gives_up_after_retries(tmp_path):
    slept = []
    record = download_url("http://127.0.0.1:9/clip.mp4", tmp_path, "vid", FAST, sleep=slept.append)
    assert record["status"] == "failed" and record["transient"] is True
    assert record["attempts"] == 3 and len(slept) == 2
    assert "refused" in record["reason"].lower()


def test_ytdlp_params_carry_every_setting_and_prefer_video_only():
    options = DownloadOptions(max_height=720, cookies_file="c.txt", proxy="socks5://127.0.0.1:1080",
                              rate_limit="2M", sleep_interval_s=1.5, max_filesize="1G")
    params = ytdlp_params(options, "out/%(ext)s")
    assert params["format"] == "bv[height<=?720]/b[height<=?720]/bv/b"
    assert params["cookiefile"] == "c.txt" and params["proxy"] == "socks5://127.0.0.1:1080"
    assert params["ratelimit"] == 2 * 1024**2 and params["max_filesize"] == 1024**3
    assert params["sleep_interval"] == 1.5 and params["noplaylist"] is True
    assert ytdlp_params(DownloadOptions(format="best"), "x")["format"] == "best"
    assert "+ba" in ytdlp_params(DownloadOptions(audio=True), "x")["format"]


def test_local_ingest_links_and_records(videos, tmp_path):
    record = ingest_local(videos["vp9.webm"], tmp_path / "out", "file-1")
    assert record["status"] == "ok" and record["file"].endswith("file-1.webm")
    assert (tmp_path / "out" / "file-1.webm").stat().st_ino == videos["vp9.webm"].stat().st_ino
    copied = ingest_local(videos["vp9.webm"], tmp_path / "copy", "file-1", mode="copy")
    assert (tmp_path / "copy" / "file-1.webm").stat().st_ino != videos["vp9.webm"].stat().st_ino
    assert copied["filesize"] == videos["vp9.webm"].stat().st_size and json.dumps(copied)
    missing = ingest_local(tmp_path / "nope.mp4", tmp_path / "out", "file-2")
    assert missing["status"] == "failed" and "not found" in missing["reason"]


@pytest.mark.parametrize("mode", ["in_place", "link across filesystems"])
def test_local_videos_are_read_in_place_never_copied_moved_or_removed(videos, tmp_path, monkeypatch, mode):
    from video_miner.download import DownloadOptions, download_shard

    mine = tmp_path / "mine" / "clip.webm"
    mine.parent.mkdir()
    mine.write_bytes(videos["vp9.webm"].read_bytes())
    if mode != "in_place":
        def no_links(*args, **kwargs):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr("video_miner.download.os.link", no_links)
    source = {"video_id": "file-1", "kind": "local", "location": str(mine)}
    for keep_videos in (True, False):  # false moves a shard's videos on: never the user's own
        table, record = download_shard([source], tmp_path / f"out{keep_videos}", tmp_path / "cache",
                                       DownloadOptions(), "in_place" if mode == "in_place" else "link",
                                       keep_videos=keep_videos)
        row = table.to_pylist()[0]
        assert row["kept"] and row["file"] == str(mine) and record["ok"] == 1
        assert list((tmp_path / f"out{keep_videos}").iterdir()) == []
    assert mine.read_bytes() == videos["vp9.webm"].read_bytes()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.suffix == ".webm"]  # no copy anywhere


@pytest.mark.parametrize("url,key", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "Youtube"),
    ("https://youtu.be/dQw4w9WgXcQ", "Youtube"),
    ("http://127.0.0.1:8000/clips/a.MP4?token=x", "Generic"),
    ("https://vimeo.com/76979871", None),  # any site: every extractor is asked
    ("https://example.com/watch.html", None),
])
def test_plain_urls_go_to_their_one_extractor(url, key):
    from video_miner.download import extractor_key

    assert extractor_key(url) == key
