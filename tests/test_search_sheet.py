"""The video sheet, YouTube search (yt-dlp's network replaced at the YoutubeDL boundary
with recorded results in its own shape), the search checkpoint and the CLI."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import FAST_DOWNLOADS, REPO, run_workflow
from video_miner.cli import main
from video_miner.download import DownloadOptions
from video_miner.ids import query_slug, video_id_for_url
from video_miner.search import SearchOptions, run_search, search_youtube
from video_miner.sheet import SHEET_COLUMNS, append_to_sheet, read_sheet
from video_miner.sources import collect_videos

RECORDED_DIR = Path(__file__).parent / "recorded"


def recorded_search(query, entries):
    """A flat ytsearch result as yt-dlp returns it."""
    return {"_type": "playlist", "id": query, "title": query, "extractor": "youtube:search",
            "entries": [{"_type": "url", "ie_key": "Youtube", "id": e["id"],
                         "url": e.get("url", f"https://www.youtube.com/watch?v={e['id']}"),
                         "title": e["title"], "channel": e.get("channel", "A channel"), "duration": e.get("duration"),
                         "view_count": 10} for e in entries]}


GLASS = recorded_search("glass door", [
    {"id": "aaaaaaaaaaa", "title": "Glass door\tclose-up\nHD", "duration": 65.0},
    {"id": "bbbbbbbbbbb", "title": "A 3 hour stream", "duration": 10800.0},
    {"id": "ccccccccccc", "title": "Short", "duration": 4.0},
    {"id": "ddddddddddd", "title": "Premiere, duration unknown"},
    {"id": "aaaaaaaaaaa", "title": "Glass door (listed twice)", "duration": 65.0},
])


class RecordedYoutubeDL:
    """yt_dlp.YoutubeDL with its network layer replaced by recorded results."""

    responses: dict = {}
    params_seen: list = []

    def __init__(self, params):
        RecordedYoutubeDL.params_seen.append(params)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def extract_info(self, url, download=True):
        assert not download
        count, query = url.removeprefix("ytsearch").split(":", 1)
        result = dict(self.responses[query])
        result["entries"] = result["entries"][: int(count)]
        return result


@pytest.fixture
def recorded(monkeypatch):
    import yt_dlp

    RecordedYoutubeDL.responses = {"glass door": GLASS}
    RecordedYoutubeDL.params_seen = []
    monkeypatch.setattr(yt_dlp, "YoutubeDL", RecordedYoutubeDL)
    return RecordedYoutubeDL


def test_search_filters_by_duration_and_uses_download_settings(recorded):
    download = DownloadOptions(cookies_file="/secret/cookies.txt", proxy="socks5://127.0.0.1:9")
    result = search_youtube("glass door", SearchOptions(max_results=5, min_duration_s=10, max_duration_s=3600), download)
    assert [e["url"] for e in result["entries"]] == ["https://www.youtube.com/watch?v=aaaaaaaaaaa",
                                                      "https://www.youtube.com/watch?v=ddddddddddd",
                                                      "https://www.youtube.com/watch?v=aaaaaaaaaaa"]
    assert result["filtered_out"] == 2
    params = recorded.params_seen[0]
    assert params["extract_flat"] == "in_playlist" and params["skip_download"]
    assert params["cookiefile"] == "/secret/cookies.txt" and params["proxy"] == "socks5://127.0.0.1:9"


def test_failed_search_is_recorded_not_raised(tmp_path, monkeypatch):
    import yt_dlp

    class Offline(RecordedYoutubeDL):
        def extract_info(self, url, download=True):
            raise yt_dlp.utils.DownloadError("ERROR: Unable to download API page: <urlopen error [Errno -3]>")

    monkeypatch.setattr(yt_dlp, "YoutubeDL", Offline)
    result = run_search("glass door", SearchOptions(), DownloadOptions(), str(tmp_path / "r.json"))
    assert result["status"] == "failed" and "Unable to download API page" in result["reason"]
    assert json.loads((tmp_path / "r.json").read_text())["entries"] == []


def test_sheet_appends_only_new_videos_on_one_line_each(tmp_path):
    sheet = tmp_path / "config" / "videos.tsv"
    entries = [{"url": "https://youtu.be/aaaaaaaaaaa", "title": "Tab\there\nnewline", "channel": "C", "duration_s": 65},
               {"url": "https://www.youtube.com/watch?v=aaaaaaaaaaa", "title": "same video, another URL form"},
               {"url": "not a url"}]
    added = append_to_sheet(sheet, entries, "search: x", today=dt.date(2026, 11, 22))
    assert [r["video_id"] for r in added] == ["aaaaaaaaaaa"]
    assert append_to_sheet(sheet, entries, "search: x") == []
    table = read_sheet(sheet)
    assert table.columns.tolist() == SHEET_COLUMNS
    assert table.iloc[0].to_dict() == {"video_id": "aaaaaaaaaaa", "url": "https://youtu.be/aaaaaaaaaaa",
                                       "title": "Tab\\there\\nnewline", "channel": "C", "duration_s": "65",
                                       "source": "search: x", "added": "2026-11-22"}
    assert len(sheet.read_text().splitlines()) == 2


def test_videos_from_sheet_search_and_lists_collapse_to_one_each(tmp_path):
    (tmp_path / "config").mkdir()
    append_to_sheet(tmp_path / "config" / "videos.tsv", [{"url": "https://youtu.be/aaaaaaaaaaa"},
                                                         {"url": "https://youtu.be/eeeeeeeeeee"}], "manual")
    cached = tmp_path / "results" / "search" / f"{query_slug('glass door')}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"status": "ok", "query": "glass door", "entries": [
        {"url": "https://www.youtube.com/watch?v=eeeeeeeeeee"}, {"url": "https://www.youtube.com/watch?v=fffffffffff"}]}))
    config = {"urls": ["https://www.youtube.com/watch?v=aaaaaaaaaaa"], "video_sheet": "config/videos.tsv",
              "search": {"queries": ["glass door", "not searched yet"]}}
    collection = collect_videos(config, str(tmp_path))
    assert list(collection.videos) == ["aaaaaaaaaaa", "eeeeeeeeeee", "fffffffffff"]
    assert collection.duplicates == 2
    assert collection.videos["fffffffffff"].origin == "search 'glass door'[1]"


def test_cli_search_adds_to_the_sheet_once(tmp_path, recorded):
    runner = CliRunner()
    args = ["search", "glass door", "-n", "5", "--min-duration", "10", "-d", str(tmp_path)]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "4 found, 3 new added" in first.output and "1 outside the duration range" in first.output
    again = runner.invoke(main, args)
    assert "0 new added" in again.output
    sheet = read_sheet(tmp_path / "config" / "videos.tsv")
    assert sheet["video_id"].tolist() == ["aaaaaaaaaaa", "bbbbbbbbbbb", "ddddddddddd"]
    assert set(sheet["source"]) == {"search: glass door"}


def test_cli_validate_config_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extract: {strategy: sometimes}\nfliter: {}\ndetection: {enabled: true}\n")
    result = CliRunner().invoke(main, ["validate-config", "-c", str(bad), "-d", str(tmp_path)])
    assert result.exit_code == 1
    assert "extract.strategy" in result.output and "did you mean 'filter'" in result.output
    assert "detection: 'classes' is a required property" in result.output


def test_cli_prints_missing_values_empty_and_text_from_outside_escaped(tmp_path, monkeypatch):
    import video_miner.registry

    table = pd.DataFrame({
        "video_id": ["url-1", "url-2", "file-3"], "status": ["failed", "failed", "pending"],
        "failed_stage": ["download", "download", None],
        "reason": ["HTTP Error 404\nbody: \x1b]0;pwned\x07", None, None], "kind": ["url", "url", "local"],
        "location": ["https://x/\x1b[2Ja.mp4", "https://x/b.mp4", "clips/two\nlines.mp4"],
        "origin": ["urls[0]", "urls[1]", "clips"], "title": ["A\ttitle", float("nan"), None],
    })
    monkeypatch.setattr(video_miner.registry, "video_statuses", lambda config, root: table)
    runner = CliRunner()
    listed = runner.invoke(main, ["list", "-d", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "url-1\tfailed\thttps://x/\\x1b[2Ja.mp4\tA\\ttitle\tHTTP Error 404\\nbody: \\x1b]0;pwned\\x07",
        "url-2\tfailed\thttps://x/b.mp4\t\t",
        "file-3\tpending\tclips/two\\nlines.mp4\t\t",
    ]
    status = runner.invoke(main, ["status", "-d", str(tmp_path)])
    assert "\x1b" not in status.output and "nan" not in status.output
    assert "       1 x download: HTTP Error 404\\nbody: \\x1b]0;pwned\\x07" in status.output.splitlines()
    assert "       1 x download: " in status.output.splitlines()
    exported = runner.invoke(main, ["export", "--status", "pending", "-o", str(tmp_path / "todo.txt"), "-d",
                                    str(tmp_path)])
    assert exported.exit_code == 0 and (tmp_path / "todo.txt").read_text() == "clips/two\\nlines.mp4\n"


def test_cli_validate_config_names_what_a_folder_holds_that_cannot_be_a_video(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "gone\x1b[2J.mp4").symlink_to(tmp_path / "deleted.mp4")
    (tmp_path / "my.yaml").write_text("local_videos: [clips]\n")
    result = CliRunner().invoke(main, ["validate-config", "-c", str(tmp_path / "my.yaml"), "-d", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "1 rejected inputs" in result.output
    assert "  rejected clips: broken symbolic link: 'clips/gone\\x1b[2J.mp4' -> " in result.output


@pytest.mark.slow
def test_status_list_export_on_a_real_run_with_a_failed_video(tmp_path, http_server, scene_videos):
    config = {"urls": [http_server.url("cat_pan.mp4"), http_server.url("missing")], "download": FAST_DOWNLOADS,
              "local_videos": [str(scene_videos["rocket_zoom.mp4"])], "dedup": {"backend": "phash"},
              "extract": {"strategy": "time", "every_seconds": 1.0}}
    (tmp_path / "config").mkdir()
    append_to_sheet(tmp_path / "config" / "videos.tsv", [{"url": http_server.url("static_then_cut.mp4")}], "manual")
    config_file = tmp_path / "run.yaml"
    import yaml

    config_file.write_text(yaml.safe_dump(config))
    runner = CliRunner()
    before = runner.invoke(main, ["status", "-c", str(config_file), "-d", str(tmp_path)])
    assert "4 videos" in before.output and "pending" in before.output
    run_workflow(tmp_path, config)
    status = runner.invoke(main, ["status", "-c", str(config_file), "-d", str(tmp_path)])
    assert status.exit_code == 0, status.output
    assert "complete            3" in status.output and "failed              1" in status.output
    assert "x download: [generic] missing: Unable to download webpage: HTTP Error 404" in status.output
    # Without -c the commands read the config the run recorded (results/run_config.yaml).
    recorded = runner.invoke(main, ["status", "-d", str(tmp_path)])
    assert recorded.exit_code == 0 and recorded.output == status.output, recorded.output
    listed = runner.invoke(main, ["list", "--status", "failed", "-c", str(config_file), "-d", str(tmp_path)])
    assert listed.output.split("\t")[:3] == [video_id_for_url(http_server.url("missing")), "failed",
                                             http_server.url("missing")]
    out = tmp_path / "retry.txt"
    exported = runner.invoke(main, ["export", "--status", "failed", "-o", str(out), "-c", str(config_file),
                                    "-d", str(tmp_path)])
    assert exported.exit_code == 0 and out.read_text() == http_server.url("missing") + "\n"
    listed_recorded = runner.invoke(main, ["list", "--status", "failed", "-d", str(tmp_path)])
    assert listed_recorded.exit_code == 0 and listed_recorded.output == listed.output
    table = pd.read_csv(tmp_path / "results" / "status.tsv", sep="\t")
    assert len(table) == 4  # the sheet's video went through the run with the listed ones
    assert sorted(table["status"]) == ["complete", "complete", "complete", "failed"]
    assert table.set_index("location").loc[http_server.url("static_then_cut.mp4"), "origin"] == "config/videos.tsv:2"


@pytest.mark.slow
def test_search_checkpoint_runs_keywords_to_results_and_caches_the_result(tmp_path, http_server, scene_videos):
    def record(urls):
        path = tmp_path / "recorded.json"
        entries = [{"id": f"id{i}", "url": u, "title": f"clip {i}", "duration": 2.0} for i, u in enumerate(urls)]
        path.write_text(json.dumps({"glass door": recorded_search("glass door", entries)}))
        return {"PYTHONPATH": str(RECORDED_DIR), "VIDEO_MINER_RECORDED_SEARCH": str(path)}

    config = {"search": {"queries": ["glass door"], "max_results": 10}, "download": FAST_DOWNLOADS,
              "dedup": {"backend": "phash"}, "extract": {"strategy": "time", "every_seconds": 1.0}}
    env = record([http_server.url("cat_pan.mp4"), http_server.url("rocket_zoom.mp4")])
    run_workflow(tmp_path, config, env=env)
    summary = json.loads((tmp_path / "results" / "pipeline_result.json").read_text())
    assert summary["videos"] == {"total": 2, "ok": 2, "failed": 0, "rejected": 0, "duplicates_in_input": 0,
                                 "rejected_inputs": 0}
    assert summary["searches"] == [{"query": "glass door", "status": "ok", "reason": None, "videos": 2,
                                    "outside_duration_range": 0}]
    # The same search now finds something else; the cached result keeps the video set...
    env = record([http_server.url("static_then_cut.mp4")])
    run_workflow(tmp_path, config, env=env)
    assert json.loads((tmp_path / "results" / "pipeline_result.json").read_text())["videos"]["total"] == 2
    # ...until the user asks for a fresh search.
    run_workflow(tmp_path, config, "--forcerun", "search", env=env)
    assert json.loads((tmp_path / "results" / "pipeline_result.json").read_text())["videos"]["total"] == 1


def test_cli_run_calls_snakemake_with_the_projects_snakefile_and_profile(tmp_path, scene_videos):
    import subprocess
    import sys

    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"local_videos": [str(scene_videos["cat_pan.mp4"])]}))
    proc = subprocess.run([str(Path(sys.executable).with_name("video-miner")), "run", "-c", str(config), "-d",
                           str(tmp_path), "--", "-n", "--quiet", "rules"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(REPO / "Snakefile") in proc.stderr and str(REPO / "profiles" / "default") in proc.stderr
    assert "download" in proc.stdout and "extract" in proc.stdout
    assert not (tmp_path / "results").exists()  # a dry run


def test_api_search_returns_the_entries_with_the_download_settings(recorded):
    from video_miner import api

    entries = api.search("glass door", 5, min_duration_s=10, download={"proxy": "socks5://127.0.0.1:9"})
    assert [e["url"] for e in entries][:2] == ["https://www.youtube.com/watch?v=aaaaaaaaaaa",
                                               "https://www.youtube.com/watch?v=bbbbbbbbbbb"]
    assert recorded.params_seen[-1]["proxy"] == "socks5://127.0.0.1:9"
