"""The workflow's own files on object storage: a small run with S3 as Snakemake's default
storage provider (moto on 127.0.0.1) against the same run on local disk."""

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, S3_ENV, run_workflow
from video_miner import storage

# Two small runs (local and S3) of one video: about 2 minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BUCKET = "vm-storage-test"
PREFIX = f"s3://{BUCKET}/run"
TIMINGS = ("seconds", "stage_seconds")  # wall-clock fields: the only ones allowed to differ


def small_demo() -> dict:
    """The demo config on its one video with text, a cat and a face (cat_and_rocket), frames
    every 2 s and without the clip branch, verification and masks: the model, detection
    and export stages run, in a fraction of the demo's time. Frames packed in tars (their
    paths are ``<tar>#<member>``) and privacy on (exports blurred from a table of regions):
    both must name workflow files as a local run does."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["local_videos"] = ["resources/demo/cat_and_rocket.mp4"]
    config["extract"] = {"strategy": "time", "every_seconds": 2.0, "storage": "tar"}
    config["privacy"] = {"enabled": True}
    config["detection"]["verify"] = False
    config["segment"]["enabled"] = False
    for name in ("shots", "flash", "ocr", "motion", "aesthetic", "calibration"):
        config[name]["enabled"] = False
    config["clips"] = {"cut": False, "webdataset": False}
    config["upload"] = {}
    return config


def s3_args(endpoint: str) -> list[str]:
    # Credentials come from the environment (S3_ENV), never from the command line or config.
    return ["--default-storage-provider", "s3", "--default-storage-prefix", PREFIX,
            "--storage-s3-endpoint-url", endpoint]


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, s3_server):
    client = s3_client(s3_server)
    client.create_bucket(Bucket=BUCKET)
    config = small_demo()
    local = tmp_path_factory.mktemp("local-run")
    run_workflow(local, config, timeout=600)
    remote = tmp_path_factory.mktemp("s3-run")
    run_workflow(remote, config, *s3_args(s3_server), timeout=600, env=S3_ENV)
    fetched = tmp_path_factory.mktemp("fetched")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="run/"):
        for entry in page.get("Contents", []):
            target = fetched / entry["Key"].removeprefix("run/")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, entry["Key"], str(target))
    return {"local": local, "remote": remote, "fetched": fetched, "config": config, "client": client,
            "endpoint": s3_server}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def result_files(root: Path) -> set[str]:
    """The run's results; not the local caches (results/.cache), which stay on the machine
    that ran the job."""
    return {p.relative_to(root).as_posix() for p in (root / "results").rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(root).parts}


def test_s3_run_writes_what_the_local_run_writes(runs):
    local, fetched = runs["local"], runs["fetched"]
    names = result_files(local)
    assert names == result_files(fetched)
    assert {"results/detections/annotations.json", "results/status.tsv"} <= names
    assert any(n.startswith("results/dataset/") and n.endswith(".jpg") for n in names)
    for name in sorted(names):
        mine, theirs = local / name, fetched / name
        if name.endswith(".parquet"):  # the same rows; the same metadata but for how long it took
            tables = [pq.read_table(p) for p in (mine, theirs)]
            tables = [t.drop_columns([c for c in TIMINGS if c in t.column_names]) for t in tables]
            assert tables[0].equals(tables[1]), name
            meta = [json.loads((pq.read_schema(p).metadata or {}).get(b"video_miner", b"{}")) for p in (mine, theirs)]
            assert without_timings(meta[0]) == without_timings(meta[1]), name
        elif name == "results/pipeline_result.json":
            assert without_timings(json.loads(mine.read_text())) == without_timings(json.loads(theirs.read_text()))
        else:  # COCO, the dataset's images and metadata, status.tsv, the report's plots: byte for byte
            assert mine.read_bytes() == theirs.read_bytes(), name
        # no job recorded where Snakemake staged a file
        assert b".snakemake/storage" not in theirs.read_bytes(), name
    coco = json.loads((fetched / "results" / "detections" / "annotations.json").read_text())
    assert coco["images"]  # frames every 2 s: images, perhaps no box
    # packed frames, named as the workflow names them; the privacy stage's regions
    extracted = pq.read_table(next((fetched / "results" / "extract").glob("*.parquet"))).column("path").to_pylist()
    assert extracted and all(p.startswith("results/extract/") and ".tar#" in p for p in extracted)
    assert any(n.startswith("results/privacy/") and n.endswith(".parquet") for n in names)
    # the workflow's files went to the bucket; the user's video and models were read in place
    remote = runs["remote"]
    assert not (remote / "results" / "status.tsv").exists()
    assert (remote / "resources" / "demo" / "cat_and_rocket.mp4").is_file()
    assert not (fetched / "resources").exists()  # nothing of them in the bucket


def snakemake_s3(runs, *args) -> subprocess.CompletedProcess:
    return run_workflow(runs["remote"], runs["config"], *s3_args(runs["endpoint"]), *args, env=S3_ENV)


def test_s3_second_run_does_nothing_and_a_replaced_remote_input_reruns_what_depends_on_it(runs):
    again = snakemake_s3(runs)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a newer copy of the filter's table in the bucket: embedding and all after it rerun, not before
    client = runs["client"]
    key = next(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="run/results/filter/")["Contents"])
    client.put_object(Bucket=BUCKET, Key=key, Body=client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    dry = snakemake_s3(runs, "-n")
    out = dry.stdout + dry.stderr
    rules = {line.split()[-1].rstrip(":") for line in out.splitlines() if line.startswith(("rule ", "localrule "))}
    assert {"embed", "dedup", "detect", "coco", "dataset", "summary"} <= rules
    assert not rules & {"download", "probe", "extract", "filter"}
    assert f"Updated input files: {PREFIX}/{key.removeprefix('run/')}" in out


def test_staged_paths_map_to_workflow_names_and_back(monkeypatch):
    monkeypatch.setenv(storage.ROOT_ENV, ".snakemake/storage/s3/bucket/run")
    staged = ".snakemake/storage/s3/bucket/run/results/extract/s/v/00000001.jpg"
    assert storage.logical(staged) == "results/extract/s/v/00000001.jpg"
    assert storage.staged("results/extract/s/v/00000001.jpg") == staged
    # a user's video read in place, a URL, an empty path: as they are
    for path in ("resources/demo/a.mp4", "/data/a.mp4", "https://host/a.mp4", ""):
        assert storage.staged(path) == path == storage.logical(path)
    monkeypatch.setenv(storage.ROOT_ENV, "")
    assert storage.staged("results/x.parquet") == "results/x.parquet"
    assert storage.root_for(".snakemake/storage/s3/b/p/results/run_config.yaml", "results/run_config.yaml") == \
        ".snakemake/storage/s3/b/p/"
    with pytest.raises(ValueError):
        storage.root_for("elsewhere/x.yaml", "results/run_config.yaml")


def test_tables_record_workflow_names_and_jobs_read_staged_paths(tmp_path, monkeypatch):
    from video_miner.tables.frame import FRAME

    root = ".snakemake/storage/s3/bucket/run/"
    monkeypatch.setenv(storage.ROOT_ENV, root)
    row = {"video_id": "v", "frame_index": 0, "frame_id": "v-0", "timestamp_s": 0.0, "width": 2, "height": 2,
           "path": root + "results/extract/s/v/00000000.jpg", "kept": True}
    FRAME.write(tmp_path / "t.parquet", FRAME.table([row]), {})
    assert pq.read_table(tmp_path / "t.parquet")["path"].to_pylist() == ["results/extract/s/v/00000000.jpg"]
    assert FRAME.read(tmp_path / "t.parquet")["path"].tolist() == [row["path"]]


def test_reading_local_files_in_place_is_refused_on_object_storage(tmp_path, s3_server):
    """local_mode: in_place has later jobs read the user's path, which object storage
    cannot stage: one clear error before anything runs."""
    proc = run_workflow(tmp_path, {"urls": ["https://example.com/a.mp4"], "local_mode": "in_place"},
                        *s3_args(s3_server), "-n", check=False, env=S3_ENV)
    assert proc.returncode != 0
    assert "local_mode: in_place has later jobs read your files" in proc.stdout + proc.stderr
