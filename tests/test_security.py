"""Secure by default: nothing from an input reaches a path or a shell, secrets stay out of
logs and outputs, only http(s) URLs are fetched, checkpoints run no code of their own."""

import logging
import re
import urllib.parse
from pathlib import Path

import pytest

from conftest import REPO
from video_miner.download import DownloadOptions, download_shard
from video_miner.ids import video_id_for_url
from video_miner.logs import log_to_file
from video_miner.tables.video import VIDEO

FAST = DownloadOptions(retries=0, socket_timeout_s=5)


def test_hostile_file_names_end_up_only_in_the_table(http_server, videos, tmp_path):
    name = "evil name;$(touch PWNED) `id` ..%2F.mp4"
    (videos.root / name).write_bytes(videos["h264.mp4"].read_bytes())
    url = http_server.url(urllib.parse.quote(name))
    video_id = video_id_for_url(url)
    assert re.fullmatch(r"url-[0-9a-f]{16}", video_id)
    out, cache = tmp_path / "download" / "shard", tmp_path / ".cache" / "shard"
    table, _ = download_shard([{"video_id": video_id, "kind": "url", "location": url}], out, cache, FAST)
    VIDEO.write(tmp_path / "download" / "shard.parquet", table, {})
    row = VIDEO.read(tmp_path / "download" / "shard.parquet").iloc[0]
    assert row["kept"], row["reason"]
    assert [p.name for p in out.iterdir()] == [f"{video_id}.mp4"] and row["file"] == (out / f"{video_id}.mp4").as_posix()
    # Everything the job leaves in its cache is named by the id, never by the URL or title.
    assert all(p.name.startswith(video_id) for p in cache.rglob("*")), list(cache.rglob("*"))
    assert "PWNED" in row["title"] and row["location"] == url  # kept as data, never executed:
    assert not any(Path(d, "PWNED").exists() for d in (tmp_path, out, cache, videos.root, Path.cwd()))


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
        table, record = download_shard([{"video_id": "vid", "kind": "url", "location": http_server.url("h264.mp4")}],
                                       tmp_path / "out", tmp_path / "cache",
                                       DownloadOptions(retries=0, cookies_file=str(cookies)))
    finally:
        logging.getLogger().handlers.clear()
    VIDEO.write(tmp_path / "shard.parquet", table, record)
    assert table.column("kept").to_pylist() == [True]
    written = (tmp_path / "shard.parquet").read_bytes()
    cached = [p.read_text() for p in (tmp_path / "cache").glob("*.json")]
    assert cached  # the job's per-video record, kept for a resumed run
    assert secret not in log_file.read_text() and secret not in str(table.to_pylist()) and secret not in str(record)
    assert secret.encode() not in written and not any(secret in text for text in cached)
    assert str(cookies) not in log_file.read_text()
    assert not any(str(cookies) in text for text in cached)


def test_rules_run_scripts_not_shell_commands():
    # Inputs reach jobs as Python values (params), never as text spliced into a shell line.
    for rule_file in (REPO / "rules").glob("*.smk"):
        assert "shell:" not in rule_file.read_text(), rule_file
    modules = [*(REPO / "video_miner").rglob("*.py"), *(REPO / "scripts").glob("*.py")]
    assert len(modules) > 20
    for module in modules:
        text = module.read_text()
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, module
