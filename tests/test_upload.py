"""Uploads through fsspec: a local folder, a local S3-compatible server (moto), an
interrupted upload that resumes, and the marker written last."""

import hashlib
import json

import pytest

from video_miner.upload import UploadTarget, collect_files, upload


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    (root / "dataset" / "images" / "v1").mkdir(parents=True)
    for i in range(5):
        (root / "dataset" / "images" / "v1" / f"{i:08d}.jpg").write_bytes(bytes([i]) * (1000 + i))
    (root / "dataset" / "metadata.jsonl").write_text('{"file_name": "images/v1/00000000.jpg"}\n')
    (root / "dataset" / ".hidden.tmp").write_text("an interrupted write")
    (root / "annotations.json").write_text('{"images": []}')
    return root


def sources(results):
    return collect_files([(str(results / "dataset"), ""), (str(results / "annotations.json"), "annotations.json")])


def test_collect_files_keeps_layout_and_skips_hidden_files(results):
    paths = [rel for _, rel in sources(results)]
    assert paths == [f"images/v1/{i:08d}.jpg" for i in range(5)] + ["metadata.jsonl", "annotations.json"]


def test_upload_to_a_folder_verifies_every_file_and_writes_the_marker(results, tmp_path):
    target = UploadTarget.from_config("local", str(tmp_path / "remote"))
    marker = tmp_path / "upload" / "local.done"
    record = upload(target, sources(results), marker, tmp_path / "upload" / ".local.journal.jsonl")
    assert record["uploaded"] == 7 and json.loads(marker.read_text()) == record
    for entry in record["files"]:
        remote = (tmp_path / "remote" / entry["path"]).read_bytes()
        assert hashlib.sha256(remote).hexdigest() == entry["sha256"] and len(remote) == entry["size"]
    again = upload(target, sources(results), marker, tmp_path / "upload" / ".local.journal.jsonl")
    assert (again["uploaded"], again["skipped_already_uploaded"]) == (0, 7)


def test_changed_or_vanished_files_are_uploaded_again(results, tmp_path):
    target = UploadTarget.from_config("local", str(tmp_path / "remote"))
    journal = tmp_path / ".journal.jsonl"
    upload(target, sources(results), tmp_path / "m.done", journal)
    (results / "annotations.json").write_text('{"images": [1]}')
    (tmp_path / "remote" / "images" / "v1" / "00000003.jpg").unlink()
    record = upload(target, sources(results), tmp_path / "m.done", journal)
    assert record["uploaded"] == 2
    assert (tmp_path / "remote" / "annotations.json").read_text() == '{"images": [1]}'


def test_interrupted_upload_resumes_and_the_marker_comes_last(results, tmp_path, monkeypatch):
    from fsspec.implementations.local import LocalFileSystem

    real_put = LocalFileSystem.put_file
    calls = {"n": 0}

    def failing_put(self, lpath, rpath, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise ConnectionResetError("connection reset by peer")
        return real_put(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "put_file", failing_put)
    target = UploadTarget.from_config("local", {"url": str(tmp_path / "remote"), "workers": 1})
    marker, journal = tmp_path / "local.done", tmp_path / ".local.journal.jsonl"
    with pytest.raises(ConnectionResetError):
        upload(target, sources(results), marker, journal)
    assert not marker.exists()
    assert len(journal.read_text().splitlines()) == 3
    monkeypatch.setattr(LocalFileSystem, "put_file", real_put)
    record = upload(target, sources(results), marker, journal)
    assert (record["uploaded"], record["skipped_already_uploaded"]) == (4, 3) and marker.exists()


def test_parallel_upload_stops_at_a_failure_and_resumes_with_the_rest(tmp_path, monkeypatch):
    from fsspec.implementations.local import LocalFileSystem

    local = tmp_path / "results"
    local.mkdir()
    for i in range(40):
        (local / f"{i:03d}.jpg").write_bytes(i.to_bytes(2, "big") * 500)
    files = collect_files([(str(local), "frames")])
    real_put = LocalFileSystem.put_file

    def failing_put(self, lpath, rpath, *args, **kwargs):
        if rpath.endswith("frames/017.jpg"):
            raise ConnectionResetError("connection reset by peer")
        return real_put(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "put_file", failing_put)
    target = UploadTarget.from_config("local", {"url": str(tmp_path / "remote"), "workers": 8})
    assert target.workers == 8
    marker, journal = tmp_path / "local.done", tmp_path / ".local.journal.jsonl"
    with pytest.raises(ConnectionResetError):
        upload(target, files, marker, journal)
    assert not marker.exists()
    journaled = {json.loads(line)["path"] for line in journal.read_text().splitlines()}
    assert "frames/017.jpg" not in journaled and len(journaled) < 40
    assert all((tmp_path / "remote" / path).exists() for path in journaled)
    monkeypatch.setattr(LocalFileSystem, "put_file", real_put)
    record = upload(target, files, marker, journal)
    assert (record["uploaded"], record["skipped_already_uploaded"]) == (40 - len(journaled), len(journaled))
    assert [e["path"] for e in record["files"]] == [rel for _, rel in files]  # marker in file order
    for entry in record["files"]:
        assert hashlib.sha256((tmp_path / "remote" / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


def test_hub_targets_upload_one_file_at_a_time():
    assert UploadTarget.from_config("hub", {"url": "hf://datasets/org/name", "workers": 8}).workers == 1


def test_a_corrupted_remote_copy_fails_verification(results, tmp_path, monkeypatch):
    from fsspec.implementations.local import LocalFileSystem

    real_put = LocalFileSystem.put_file

    def corrupting_put(self, lpath, rpath, *args, **kwargs):
        real_put(self, lpath, rpath, *args, **kwargs)
        with open(rpath, "r+b") as fh:
            fh.write(b"\x00")

    monkeypatch.setattr(LocalFileSystem, "put_file", corrupting_put)
    target = UploadTarget.from_config("local", {"url": str(tmp_path / "remote"), "verify": "sha256"})
    with pytest.raises(OSError, match="sha256 differs"):
        upload(target, sources(results), tmp_path / "m.done", tmp_path / ".j.jsonl")
    assert not (tmp_path / "m.done").exists()


def test_upload_to_a_local_s3_server(results, tmp_path, s3_server, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="datasets")
    target = UploadTarget.from_config("s3", {"url": "s3://datasets/run-1/", "storage_options": {
        "endpoint_url": s3_server}})
    marker = tmp_path / "s3.done"
    record = upload(target, sources(results), marker, tmp_path / ".s3.journal.jsonl")
    assert record["uploaded"] == 7
    listed = client.list_objects_v2(Bucket="datasets", Prefix="run-1/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"run-1/{e['path']}" for e in record["files"])
    body = client.get_object(Bucket="datasets", Key="run-1/images/v1/00000002.jpg")["Body"].read()
    assert body == bytes([2]) * 1002
    assert "testing-secret" not in marker.read_text()
    again = upload(target, sources(results), marker, tmp_path / ".s3.journal.jsonl")
    assert again["uploaded"] == 0


def test_credentials_in_a_target_url_never_reach_the_marker(results, tmp_path):
    from video_miner.upload import redact

    assert redact("s3://AKIA:s3cr3t@bucket/prefix") == "s3://bucket/prefix"
    assert redact("file:///data/x") == "file:///data/x"


def test_tokens_come_from_the_environment_and_never_reach_the_marker(monkeypatch):
    monkeypatch.setenv("MY_HF_TOKEN", "hf_secret_value")
    target = UploadTarget.from_config("hub", {"url": "hf://datasets/org/name", "token_env": "MY_HF_TOKEN"})
    assert target.key_env == "MY_HF_TOKEN" and "hf_secret_value" not in repr(target)
    assert UploadTarget.from_config("hub", "hf://datasets/org/name").key_env == "HF_TOKEN"
    # key_env is the project-wide name; token_env (the former one) still works
    assert UploadTarget.from_config("hub", {"url": "hf://datasets/org/name", "key_env": "K"}).key_env == "K"
