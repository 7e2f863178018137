"""Provenance and takedowns, export manifests, offline models and pilot samples: the
library parts and their boundaries (no workflow run here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from test_splits import frames_table
from video_miner.cli import main
from video_miner.clips import clip_export, with_clip_provenance, write_clip_export
from video_miner.config import load_config
from video_miner.export import build_coco, with_provenance, write_dataset
from video_miner.hub import ModelUnavailable, ensure_available
from video_miner.modellist import config_models
from video_miner.manifest import verify_manifest, write_manifest
from video_miner.provenance import PROVENANCE_FIELDS, load_takedown, run_id, taken_down, video_provenance
from video_miner.sources import collect_videos
from video_miner.splits import SplitSettings, make_splits
from video_miner.upload import UploadTarget, upload

REPO = Path(__file__).resolve().parents[1]

DOWNLOADS = pd.DataFrame({
    "video_id": ["dQw4w9WgXcQ", "url-aaaa", "file-bbbb", "archive-cc/m1", "url-dddd"],
    "location": ["https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://example.com/a.mp4", "videos/b.mp4",
                 "s3://bucket/c.tar", "https://example.com/d.mp4"],
    "webpage_url": ["https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://example.com/a.mp4", None, None,
                    "https://example.com/d.mp4"],
    "channel": ["Rick Astley", None, None, None, "Some Channel"],
    "uploader": ["RickAstleyVEVO", None, None, None, "someone"],
    "upload_date": ["20091025", None, None, None, "20240101"],
    "license": ["Creative Commons Attribution license (reuse allowed)", None, None, None, None],
    "source_video_id": [None, None, None, "srcvid", None],
})


# --- provenance and takedowns --------------------------------------------------------------


def test_run_id_is_a_hash_of_the_redacted_config():
    config = {"urls": ["https://x.org/a.mp4"], "upload": {"s3": {"url": "s3://b/p", "storage_options": {"secret": "k"}}}}
    same = json.loads(json.dumps(config))
    assert run_id(config) == run_id(same) and len(run_id(config)) == 16
    assert run_id({**config, "urls": ["https://x.org/b.mp4"]}) != run_id(config)
    # The secret is not part of what the id records: the manifest's redacted config gives the same id.
    assert run_id({**config, "upload": {"s3": {"url": "s3://b/p", "storage_options": {"secret": "other"}}}}) == run_id(config)
    # Keys that change no result: a new upload target, limits, download workers, shard size, frame storage.
    assert run_id({**config, "upload": {}, "limits": {"extract_s": 9}, "download": {"workers": 9}, "shard_size": 8,
                   "extract": {"storage": "tar", "tar_mb": 64}}) == run_id({**config, "download": {}, "extract": {}})
    assert run_id({**config, "download": {"max_height": 360}}) != run_id({**config, "download": {}})


def test_video_provenance_gives_what_the_source_gave_and_nothing_made_up():
    provenance = video_provenance(DOWNLOADS, "r1")
    assert provenance["dQw4w9WgXcQ"] == {
        "source": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "channel": "Rick Astley", "uploader": "RickAstleyVEVO",
        "upload_date": "20091025", "license": "Creative Commons Attribution license (reuse allowed)", "run_id": "r1"}
    assert provenance["file-bbbb"] == {"source": "videos/b.mp4", "channel": None, "uploader": None,
                                       "upload_date": None, "license": None, "run_id": "r1"}
    # A download table written before licences were recorded: empty, not an error.
    old = video_provenance(DOWNLOADS.drop(columns=["license", "uploader"]), "r1")
    assert old["dQw4w9WgXcQ"]["license"] is None and old["dQw4w9WgXcQ"]["channel"] == "Rick Astley"


@pytest.mark.parametrize("entry,expected", [
    ("dQw4w9WgXcQ", {"dQw4w9WgXcQ"}),  # a video id
    ("https://youtu.be/dQw4w9WgXcQ", {"dQw4w9WgXcQ"}),  # another spelling of the same video
    ("https://m.youtube.com/shorts/dQw4w9WgXcQ", {"dQw4w9WgXcQ"}),
    ("HTTPS://EXAMPLE.com:443/a.mp4#t=3", {"url-aaaa"}),  # normalised as the inputs are
    ("rick astley", {"dQw4w9WgXcQ"}),  # a channel, any case
    ("someone", {"url-dddd"}),  # an uploader
    ("srcvid", {"archive-cc/m1"}),  # the video an archive's clip was cut from
    ("https://example.com/other.mp4", set()),
])
def test_takedown_entries_match_ids_urls_and_channels(entry, expected):
    assert set(taken_down(load_takedown([entry]), DOWNLOADS)) == expected


def test_status_marks_processed_videos_taken_down_with_the_entry_and_keeps_failures():
    from video_miner.summary import mark_taken_down

    status = pd.DataFrame({"video_id": ["a", "b", "c"], "status": ["complete", "failed", "complete"],
                           "reason": ["", "HTTP Error 404", ""]})
    removed = {"a": "takedown: URL https://x.org/a.mp4", "b": "takedown: video id b"}
    marked = mark_taken_down(status, removed)
    assert marked[["status", "reason"]].values.tolist() == [
        ["taken down", "takedown: URL https://x.org/a.mp4"], ["failed", "HTTP Error 404"], ["complete", ""]]
    assert status["status"].tolist() == ["complete", "failed", "complete"]  # a copy


def test_takedown_file_and_list_add_up(tmp_path):
    listed = tmp_path / "takedown.txt"
    listed.write_text("# requests of 2026-11\n\nurl-aaaa\n  https://example.com/d.mp4  \n")
    removed = taken_down(load_takedown(["file-bbbb"], [listed]), DOWNLOADS)
    assert removed == {"url-aaaa": "takedown: video id url-aaaa", "url-dddd": "takedown: URL https://example.com/d.mp4",
                       "file-bbbb": "takedown: video id file-bbbb"}
    assert taken_down(load_takedown([]), DOWNLOADS) == {}


def test_a_takedown_removes_frames_after_the_split_without_moving_other_videos():
    frames = frames_table({"a": 4, "b": 4, "c": 4, "d": 6, "e": 2})
    copies = pd.DataFrame({"video_id": ["a", "b"], "duplicate_of": [None, "a"]})  # a takedown of a keeps b's split
    settings = SplitSettings(ratios={"train": 0.5, "val": 0.5}, seed=0)
    before, _, _ = make_splits(frames, copies, None, settings)
    videos, split_table, record = make_splits(frames, copies, None, settings, {"a": "takedown: video id a", "d": "x"})
    assert not {"a", "d"} & set(videos["video_id"]) and not {"a", "d"} & set(split_table["video_id"])
    splits = dict(zip(before["video_id"], before["split"]))
    assert all(splits[v] == s for v, s in zip(videos["video_id"], videos["split"]))
    assert record["takedown"] == {"videos": {"a": "takedown: video id a", "d": "x"}, "frames": 10}
    assert sum(record["report"]["frames"].values()) == 10  # the report counts what the exports hold


def test_every_frame_and_clip_export_carries_the_provenance(tmp_path):
    provenance = video_provenance(DOWNLOADS, "r1")
    frames = frames_table({"dQw4w9WgXcQ": 2, "file-bbbb": 1}, boxes=lambda r: (["car"],))
    for row in frames.itertuples():
        Path(tmp_path, row.path).parent.mkdir(parents=True, exist_ok=True)
        Path(tmp_path, row.path).write_bytes(b"jpg")
    frames["path"] = [str(tmp_path / p) for p in frames["path"]]
    frames["split"] = "train"
    coco = build_coco(with_provenance(frames, provenance), ["car"])
    assert coco["images"][0]["license"].startswith("Creative Commons") and coco["images"][0]["run_id"] == "r1"
    assert coco["images"][2]["channel"] is None and coco["images"][2]["source"] == "videos/b.mp4"
    videos = {v: {"location": p["source"], **p} for v, p in provenance.items()}
    write_dataset(tmp_path / "dataset", frames, videos)
    metadata = pq.read_table(tmp_path / "dataset" / "train" / "metadata.parquet").to_pylist()
    assert {k: metadata[0][k] for k in ("source", "channel", "uploader", "upload_date", "run_id")} == {
        "source": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "channel": "Rick Astley",
        "uploader": "RickAstleyVEVO", "upload_date": "20091025", "run_id": "r1"}
    clips = pd.DataFrame({"video_id": ["dQw4w9WgXcQ"], "clip_id": ["dQw4w9WgXcQ/c0"], "start_frame": [0],
                          "end_frame": [10], "start_s": [0.0], "end_s": [1.0], "kept": [True], "reason": [""]})
    rows = with_clip_provenance(clip_export({"shots": clips}, {}, {}, None), provenance)
    write_clip_export(tmp_path / "clips", rows, None)
    line = json.loads((tmp_path / "clips" / "metadata.jsonl").read_text())
    assert all(line[f] == provenance["dQw4w9WgXcQ"][f] for f in PROVENANCE_FIELDS)
    assert pq.read_table(tmp_path / "clips" / "metadata.parquet").to_pylist()[0]["license"].startswith("Creative")


def test_an_upload_removes_the_files_it_had_uploaded_that_are_gone(tmp_path):
    local = tmp_path / "results"
    (local / "keep").mkdir(parents=True)
    (local / "keep" / "a.jpg").write_bytes(b"a")
    (local / "gone.jpg").write_bytes(b"b")
    remote = tmp_path / "remote"
    (remote).mkdir()
    (remote / "theirs.txt").write_text("not ours")  # never uploaded by video-miner: never removed
    target = UploadTarget.from_config("local", str(remote))
    journal = tmp_path / ".local.journal.jsonl"
    files = [(str(local / "keep" / "a.jpg"), "keep/a.jpg"), (str(local / "gone.jpg"), "gone.jpg")]
    upload(target, files, tmp_path / "local.done", journal)
    assert (remote / "gone.jpg").is_file()
    record = upload(target, files[:1], tmp_path / "local.done", journal)  # gone.jpg was taken down
    assert record["removed"] == ["gone.jpg"] and not (remote / "gone.jpg").exists()
    assert (remote / "keep" / "a.jpg").is_file() and (remote / "theirs.txt").is_file()
    assert upload(target, files[:1], tmp_path / "local.done", journal)["removed"] == []


# --- manifests -------------------------------------------------------------------------------


def test_a_manifest_verifies_and_any_change_fails_it(tmp_path):
    export = tmp_path / "dataset"
    (export / "train" / "images").mkdir(parents=True)
    (export / "train" / "images" / "a.jpg").write_bytes(b"frame")
    (export / "train" / "metadata.parquet").write_bytes(b"table")
    summary = tmp_path / "pipeline_result.json"
    summary.write_text(json.dumps({"funnel": [{"stage": "download", "count": 3}, {"stage": "extract", "count": 40}]}))
    config = {"filter": {"model": str(tmp_path)}, "shard_size": 4}
    local_model = tmp_path / "model"
    local_model.mkdir()
    (local_model / "config.json").write_text("{}")
    context = {"run_id": run_id(config), "config": config, "models": [str(local_model), "org/not-cached"]}
    manifest = write_manifest(export, context, {"train": 1}, {"v": {"source": "x"}}, summary)
    assert manifest["counts"] == {"stages": {"download": 3, "extract": 40}, "splits": {"train": 1}}
    assert manifest["software"]["version"] and manifest["software"]["git_revision"]  # a checkout here
    assert manifest["models"][0]["local"] and len(manifest["models"][0]["sha256"]) == 64
    assert manifest["models"][1] == {"id": "org/not-cached", "local": False, "revision": None}
    assert [f["path"] for f in manifest["files"]] == ["train/images/a.jpg", "train/metadata.parquet"]
    assert verify_manifest(export) == []
    # Snakemake marks every folder output (the dataset is one) with a hidden file after the job
    (export / ".snakemake_timestamp").write_text("")
    assert CliRunner().invoke(main, ["verify-manifest", str(export)]).exit_code == 0
    (export / "train" / "images" / "a.jpg").write_bytes(b"frams")  # same size, other bytes
    (export / "extra.txt").write_text("x")
    problems = verify_manifest(export)
    assert problems == ["sha256 differs: train/images/a.jpg", "not in the manifest: extra.txt"]
    result = CliRunner().invoke(main, ["verify-manifest", str(export)])
    assert result.exit_code == 1 and "2 problems" in result.output
    (export / "train" / "metadata.parquet").unlink()
    assert "missing: train/metadata.parquet" in verify_manifest(export)
    # A manifest next to export files (COCO) lists those; a tampered run id is caught.
    coco = tmp_path / "detections"
    coco.mkdir()
    (coco / "annotations.json").write_text("{}")
    (coco / "points.json").write_text("{}")  # another export's file in the same folder
    write_manifest(coco / "annotations.manifest.json", context, files=[coco / "annotations.json"])
    assert verify_manifest(coco / "annotations.manifest.json") == []
    data = json.loads((coco / "annotations.manifest.json").read_text())
    (coco / "annotations.manifest.json").write_text(json.dumps({**data, "run_id": "0" * 16}))
    assert verify_manifest(coco / "annotations.manifest.json") == ["run_id is not the hash of the recorded configuration"]


def test_a_manifest_outside_a_git_checkout_has_no_revision(monkeypatch):
    import video_miner.manifest as manifest

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(manifest.subprocess, "run", no_git)
    assert manifest.software()["git_revision"] is None


# --- offline models --------------------------------------------------------------------------


def _filled(tmp_path, overrides: dict) -> dict:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return load_config([str(path)], str(REPO))


def test_the_models_a_config_names(tmp_path):
    (tmp_path / "head.pth").write_bytes(b"")
    assert config_models(_filled(tmp_path, {"filter": {"enabled": True, "classes": ["a car"]},
                                            "dedup": {"model": "filter"}})) == [
        "google/siglip2-so400m-patch14-384"]  # dedup reuses the filter's: listed once
    models = config_models(_filled(tmp_path, {
        "filter": {"enabled": True, "classes": ["a car"]}, "dedup": {"model": "facebook/dinov2-small"},
        "detection": {"enabled": True, "classes": ["car"], "backend": "owlv2"},
        "segment": {"enabled": True}, "shots": {"enabled": True},
        "aesthetic": {"enabled": True, "head": str(tmp_path / "head.pth")}, "download": {"audio": True},
        "captions": {"enabled": True, "backend": "florence2"}, "audio": {"enabled": True}}))
    assert models[:2] == ["google/siglip2-so400m-patch14-384", "facebook/dinov2-small"]
    assert {"facebook/sam-vit-base", "florence-community/Florence-2-base", "openai/whisper-small",
            "openai/clip-vit-large-patch14"} <= set(models) and len(models) == 7
    assert any("owl" in m for m in models)
    # Local folders, packaged models (OpenCV, TransNetV2) and hosted APIs need no fetching.
    assert config_models(_filled(tmp_path, {
        "filter": {"enabled": True, "classes": ["a car"], "model": str(tmp_path)}, "dedup": {"backend": "phash"},
        "detection": {"enabled": True, "classes": ["face"], "backend": "opencv"},
        "captions": {"enabled": True, "backend": "api"}})) == []


def test_a_missing_model_offline_fails_before_loading_with_one_line(tmp_path, monkeypatch, tiny_models):
    from video_miner.models import LOAD_COUNTS, ModelSettings, load_hf_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelUnavailable) as caught:
        load_hf_model("google/siglip2-base-patch16-224", ModelSettings(device="cpu"))
    message = str(caught.value)
    assert "\n" not in message and "google/siglip2-base-patch16-224" in message
    assert "video-miner fetch-models -c <config>" in message
    assert LOAD_COUNTS["google/siglip2-base-patch16-224"] == 0  # failed before loading
    ensure_available(str(tiny_models["siglip2"]))  # a local folder needs no hub


class FakeHub(BaseHTTPRequestHandler):
    """The two hub endpoints snapshot_download calls: a revision's file list, then each file."""

    files = {"config.json": b'{"model_type": "tiny"}', "weights.bin": b"0123456789"}
    commit = "a" * 40
    hits: list = []

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, content_type: str, head=False):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", self.commit)
        self.send_header("ETag", '"%s"' % __import__("hashlib").sha1(body).hexdigest())
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head=False):
        FakeHub.hits.append(self.path)
        path = self.path.split("?")[0]
        if path.startswith("/api/models/tiny-org/tiny-model/tree/"):  # the file listing of a revision
            tree = [{"type": "file", "path": f, "size": len(b), "oid": __import__("hashlib").sha1(b).hexdigest()}
                    for f, b in self.files.items()]
            return self._send(json.dumps(tree).encode(), "application/json", head)
        if path.startswith("/api/models/tiny-org/tiny-model"):
            info = {"id": "tiny-org/tiny-model", "sha": self.commit, "siblings": [{"rfilename": f} for f in self.files]}
            return self._send(json.dumps(info).encode(), "application/json", head)
        for name, body in self.files.items():
            if path.endswith(f"/resolve/{self.commit}/{name}") or path.endswith(f"/resolve/main/{name}"):
                return self._send(body, "application/octet-stream", head)
        self.send_response(404)
        self.end_headers()

    def do_GET(self):
        self._route()

    def do_HEAD(self):
        self._route(head=True)


def test_fetch_models_downloads_every_hub_model_of_the_config(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"filter": {"enabled": True, "classes": ["a car"], "model": "tiny-org/tiny-model"},
                                          "dedup": {"backend": "phash"}}))
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_HUB_CACHE", None)
        cli = [sys.executable, "-m", "video_miner.cli"]
        listed = subprocess.run([*cli, "fetch-models", "-c", str(config), "-d", str(REPO), "--list"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert listed.stdout.split() == ["tiny-org/tiny-model"], listed.stderr
        done = subprocess.run([*cli, "fetch-models", "-c", str(config), "-d", str(REPO)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        snapshot = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-model" / "snapshots" / FakeHub.commit
        assert (snapshot / "weights.bin").read_bytes() == b"0123456789"
        # Offline now: the cached model passes the check the jobs make, without a request.
        check = ("from video_miner.hub import ensure_available; ensure_available('tiny-org/tiny-model'); "
                 "from video_miner.manifest import model_record; print(model_record('tiny-org/tiny-model')['revision'])")
        FakeHub.hits.clear()
        offline = subprocess.run([sys.executable, "-c", check], env={**env, "HF_HUB_OFFLINE": "1"},
                                 capture_output=True, text=True, timeout=120)
        assert offline.returncode == 0 and offline.stdout.strip() == FakeHub.commit, offline.stderr
        assert FakeHub.hits == []
    finally:
        server.shutdown()
        server.server_close()


# --- pilot runs ------------------------------------------------------------------------------


def test_max_videos_takes_a_nested_deterministic_sample(tmp_path):
    urls = [f"https://example.com/v{i}.mp4" for i in range(40)]
    everything = list(collect_videos({"urls": urls}).videos)
    small = collect_videos({"urls": urls, "max_videos": 5})
    large = collect_videos({"urls": urls, "max_videos": 12})
    assert len(small.videos) == 5 and small.left_out == 35
    assert set(small.videos) <= set(large.videos)  # a larger pilot holds the smaller one
    assert list(small.videos) == [v for v in everything if v in small.videos]  # listing order kept
    shuffled = collect_videos({"urls": list(reversed(urls)), "max_videos": 5})
    assert set(shuffled.videos) == set(small.videos)  # the sample does not depend on listing order
    assert len(collect_videos({"urls": urls, "max_videos": 100}).videos) == 40


def test_a_pilots_videos_keep_the_shards_of_the_full_run_so_its_caches_serve_it(tmp_path):
    """1% of 1000 listed URLs in shards of 32: each sampled video is in the shard the full
    run gives it, so the full run's jobs find the pilot's per-video records in their own
    shard's caches (a sample regrouped from shard 0 would leave most of them beyond the
    reach of VideoCache.nearby, and every stage but the download looks in its own shard)."""
    from video_miner.sources import assign_shards

    lists = {"urls": [f"https://example.com/v{i}.mp4" for i in range(600)], "url_files": ["more.txt"]}
    (tmp_path / "more.txt").write_text("".join(f"https://example.org/w{i}.mp4\n" for i in range(400)))
    full = assign_shards(collect_videos(lists, str(tmp_path)), 32)
    pilot = assign_shards(collect_videos({**lists, "max_videos": 10}, str(tmp_path)), 32)
    shard_of = {v: shard for shard, members in full.items() for v in members}
    assert sum(map(len, pilot.values())) == 10 and set(pilot) <= set(full)
    assert all(shard_of[v] == shard for shard, members in pilot.items() for v in members)
    assert max(int(s.rsplit("-", 1)[1]) for s in pilot) > 2  # regrouped, most would fall out of reach
