"""Secure by default: nothing from an input reaches a path or a shell, secrets stay out of
logs and outputs, only http(s) URLs are fetched, checkpoints run no code of their own."""

import logging
import re
import urllib.parse
from pathlib import Path

import pytest

from conftest import REPO
from video_miner.download import DownloadOptions, download_url
from video_miner.ids import video_id_for_url
from video_miner.logs import log_to_file

FAST = DownloadOptions(retries=0, socket_timeout_s=5)


def test_hostile_file_names_end_up_only_in_json(http_server, videos, tmp_path):
    name = "evil name;$(touch PWNED) `id` ..%2F.mp4"
    (videos.root / name).write_bytes(videos["h264.mp4"].read_bytes())
    url = http_server.url(urllib.parse.quote(name))
    video_id = video_id_for_url(url)
    assert re.fullmatch(r"url-[0-9a-f]{16}", video_id)
    out = tmp_path / "videos"
    record = download_url(url, out, video_id, FAST)
    assert record["status"] == "ok"
    assert [p.name for p in out.iterdir()] == [f"{video_id}.mp4"]
    assert "PWNED" in record["title"]  # kept as data, never executed:
    assert not any(Path(d, "PWNED").exists() for d in (tmp_path, out, videos.root, Path.cwd()))


@pytest.mark.parametrize("url", ["http://127.0.0.1/../../etc/passwd", "http://127.0.0.1/a%00b/../../x.mp4",
                                 "http://127.0.0.1/" + "a" * 5000])
def test_path_tricks_in_urls_give_plain_hash_ids(url):
    assert re.fullmatch(r"url-[0-9a-f]{16}", video_id_for_url(url))


def test_cookie_values_never_reach_logs_or_records(http_server, tmp_path):
    secret = "s3cr3t-cookie-value-4711"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{secret}\n")
    log_file = tmp_path / "download.log"
    log_to_file(str(log_file), level=logging.DEBUG)
    try:
        record = download_url(http_server.url("h264.mp4"), tmp_path / "out", "vid",
                              DownloadOptions(retries=0, cookies_file=str(cookies)))
    finally:
        logging.getLogger().handlers.clear()
    assert record["status"] == "ok"
    assert secret not in log_file.read_text() and secret not in str(record)
    assert str(cookies) not in log_file.read_text()


def test_rules_run_scripts_not_shell_commands():
    # Inputs reach jobs as Python values (params), never as text spliced into a shell line.
    for rule_file in (REPO / "rules").glob("*.smk"):
        assert "shell:" not in rule_file.read_text(), rule_file
    for module in (REPO / "video_miner").glob("*.py"):
        text = module.read_text()
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, module
