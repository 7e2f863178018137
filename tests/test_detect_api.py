"""The hosted detection backends at their HTTP boundary: the real moondream client and the
DINO-X REST calls against a fake server on 127.0.0.1 (success, a rate limit retried, an
auth error recorded, a malformed answer recorded, a timeout), and the key never written."""

from __future__ import annotations

import runpy
import socket
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from PIL import Image

from conftest import REPO, FakeApi
from video_miner.detect_api import ApiError, RetryPolicy, call_with_retries, http_error
from video_miner.detection import DetectionSettings, make_detector
from video_miner.models import ModelSettings
from video_miner.tables.frame import FRAME

KEY = "sk-test-9f8e7d6c5b4a-never-write-me"
CPU = ModelSettings(device="cpu", num_workers=1)


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("TEST_DETECT_KEY", KEY)
    default_timeout = socket.getdefaulttimeout()
    server = FakeApi()
    yield server
    server.server.shutdown()
    socket.setdefaulttimeout(default_timeout)  # the moondream backend sets the job's default


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-frames")
    Image.new("RGB", (200, 100), (90, 120, 30)).save(root / "small.jpg")
    Image.new("RGB", (3000, 1500), (30, 60, 90)).save(root / "large.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def settings(backend: str, url: str, **api) -> DetectionSettings:
    section = {"endpoint": url + ("/v1" if backend == "moondream" else ""), "key_env": "TEST_DETECT_KEY"}
    if backend == "moondream":
        section["points"] = True
    return DetectionSettings.from_config({
        "backend": backend, "classes": ["cat", "face"], "threshold": 0.3, backend: section,
        "api": {"workers": 1, "timeout_s": 2, "retries": 2, "retry_backoff_s": 0.0, **api}})


def ok(body, delay=0.0):
    return (200, body, {}, delay)


MOONDREAM_CAT = ok({"objects": [{"x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}]})
NOTHING = ok({"objects": []})
TASK = ok({"code": 0, "msg": "ok", "data": {"task_uuid": "task-1"}})
RUNNING = ok({"code": 0, "data": {"status": "running"}})


def dinox_done(objects):
    return ok({"code": 0, "data": {"status": "success", "result": {"objects": objects}}})


def plan_success(api: FakeApi, backend: str):
    """Answers to one frame: a cat box (and a point), no face."""
    if backend == "moondream":
        api.plan["/v1/detect"] = [MOONDREAM_CAT, NOTHING] * 4
        api.plan["/v1/point"] = [ok({"points": [{"x": 0.5, "y": 0.25}]}), ok({"points": []})] * 4
    else:
        api.plan["/v2/task/dinox/detection"] = [TASK]
        api.plan["/v2/task_status/task-1"] = [RUNNING, dinox_done([
            {"bbox": [20, 20, 100, 60], "score": 0.9, "category": "cat"},
            {"bbox": [0, 0, 5, 5], "score": 0.95, "category": "tree"},  # not a configured class
            {"bbox": [50, 50, 60, 60], "score": 0.1, "category": "face"}])]  # under the threshold


def first_call(backend: str) -> str:
    return "/v1/detect" if backend == "moondream" else "/v2/task/dinox/detection"


@pytest.mark.parametrize("backend", ["moondream", "dinox"])
def test_success_gives_boxes_in_frame_pixels_with_the_key_in_a_header(api, frames_dir, backend):
    plan_success(api, backend)
    detector = make_detector(settings(backend, api.url), CPU)
    found = detector.annotate([str(frames_dir / "small.jpg"), str(frames_dir / "broken.jpg")])
    assert found[1] is None  # unreadable: no request sent for it
    assert found[0].error is None
    assert found[0].boxes.tolist() == [pytest.approx([20, 20, 100, 60, 1.0 if backend == "moondream" else 0.9, 0])]
    if backend == "moondream":
        assert found[0].points.tolist() == [pytest.approx([100, 25, 0])]  # a point, never a box
        assert api.paths() == ["/v1/detect", "/v1/point", "/v1/detect", "/v1/point"]  # per class: detect, point
        assert [r["body"]["object"] for r in api.requests] == ["cat", "cat", "face", "face"]
        assert all(r["headers"]["X-Moondream-Auth"] == KEY for r in api.requests)
        assert api.requests[0]["body"]["image_url"].startswith("data:image/jpeg;base64,")
    else:
        assert api.paths() == ["/v2/task/dinox/detection", "/v2/task_status/task-1", "/v2/task_status/task-1"]
        body = api.requests[0]["body"]
        assert body["prompt"] == {"type": "text", "text": "cat.face"} and body["model"] == "DINO-X-1.0"
        assert body["targets"] == ["bbox"] and body["bbox_threshold"] == 0.3
        assert all(r["headers"]["Token"] == KEY for r in api.requests)


def test_dinox_sends_large_frames_downscaled_and_scales_the_boxes_back(api, frames_dir):
    plan_success(api, "dinox")
    found = make_detector(settings("dinox", api.url), CPU).annotate([str(frames_dir / "large.jpg")])
    scale = 1536 / 3000
    assert found[0].boxes[0, :4].tolist() == pytest.approx([20 / scale, 20 / scale, 100 / scale, 60 / scale], rel=1e-3)
    with Image.open(__import__("io").BytesIO(__import__("base64").b64decode(
            api.requests[0]["body"]["image"].split(",", 1)[1]))) as sent:
        assert sent.size == (1536, 768)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("backend", ["moondream", "dinox"])
def test_rate_limits_and_server_errors_are_retried(api, frames_dir, backend, status):
    plan_success(api, backend)
    path = first_call(backend)
    api.plan[path] = [(status, {"error": {"message": "slow down"}}, {"Retry-After": "0"}, 0), *api.plan[path]]
    found = make_detector(settings(backend, api.url), CPU).annotate([str(frames_dir / "small.jpg")])
    assert found[0].error is None and len(found[0].boxes) == 1
    assert api.paths()[:2] == [path, path]
    if backend == "dinox":  # the retry is the same task for the server: billed once
        keys = [r["headers"]["Idempotency-Key"] for r in api.requests[:2]]
        assert keys[0] == keys[1] and len(keys[0]) == 32


@pytest.mark.parametrize("backend", ["moondream", "dinox"])
def test_auth_errors_are_recorded_not_retried_and_stop_the_job_sending(api, frames_dir, backend):
    api.plan[first_call(backend)] = [(401, {"error": {"message": "invalid API key"}}, {}, 0)]
    detector = make_detector(settings(backend, api.url), CPU)
    found = detector.annotate([str(frames_dir / "small.jpg")] * 3)
    assert found[0].error == "detection API: HTTP 401: invalid API key"
    assert all(f.error.startswith("detection API: not sent, the server refused the key earlier (HTTP 401")
               for f in found[1:])
    assert len(api.requests) == 1  # no retry, and nothing more sent


@pytest.mark.parametrize("backend", ["moondream", "dinox"])
def test_bad_requests_are_recorded_with_status_and_message(api, frames_dir, backend):
    api.plan[first_call(backend)] = [(400, {"message": "image too large"}, {}, 0)]
    found = make_detector(settings(backend, api.url), CPU).annotate([str(frames_dir / "small.jpg")] * 2)
    assert [f.error for f in found] == ["detection API: HTTP 400: image too large"] * 2
    assert len(api.requests) == 2  # one per frame: a 400 concerns its request only


@pytest.mark.parametrize("answer", [b"<html>oops</html>", {"objs": []}, {"objects": [{"x_min": "left"}]}])
def test_moondream_malformed_answers_are_recorded_not_retried(api, frames_dir, answer):
    api.plan["/v1/detect"] = [ok(answer)]
    found = make_detector(settings("moondream", api.url), CPU).annotate([str(frames_dir / "small.jpg")])
    assert found[0].error.startswith("detection API: malformed answer")
    assert len(api.requests) == 1


@pytest.mark.parametrize("trigger,status", [
    (ok({"code": 0, "data": {}}), None),  # no task id
    (ok([1, 2]), None),
    (TASK, ok({"code": 0, "data": {"status": "success", "result": {"objects": [{"bbox": [1, 2]}]}}})),
    (TASK, ok({"code": 0, "data": {"status": "exploded"}})),
])
def test_dinox_malformed_answers_are_recorded_not_retried(api, frames_dir, trigger, status):
    api.plan["/v2/task/dinox/detection"] = [trigger]
    if status is not None:
        api.plan["/v2/task_status/task-1"] = [status]
    found = make_detector(settings("dinox", api.url), CPU).annotate([str(frames_dir / "small.jpg")])
    assert found[0].error.startswith("detection API: malformed answer")
    assert len(api.requests) == (1 if status is None else 2)


def test_dinox_failed_tasks_and_refused_codes_are_recorded(api, frames_dir):
    api.plan["/v2/task/dinox/detection"] = [TASK]
    api.plan["/v2/task_status/task-1"] = [ok({"code": 0, "data": {"status": "failed", "error": "bad image"}})]
    found = make_detector(settings("dinox", api.url), CPU).annotate([str(frames_dir / "small.jpg")])
    assert found[0].error == "detection API: task failed: bad image"
    api.plan["/v2/task/dinox/detection"] = [ok({"code": 40001, "msg": "quota exhausted"})]
    found = make_detector(settings("dinox", api.url), CPU).annotate([str(frames_dir / "small.jpg")])
    assert found[0].error == "detection API: task refused (code 40001): quota exhausted"


@pytest.mark.parametrize("backend", ["moondream", "dinox"])
def test_timeouts_are_retried_then_recorded(api, frames_dir, backend):
    plan_success(api, backend)
    api.plan[first_call(backend)] = [ok({}, delay=1.0)]
    detector = make_detector(settings(backend, api.url, timeout_s=0.3, retries=1), CPU)
    started = time.monotonic()
    found = detector.annotate([str(frames_dir / "small.jpg")])
    assert found[0].error == "detection API: timed out after 0.3 s (after 2 attempts)"
    assert api.paths() == [first_call(backend)] * 2 and time.monotonic() - started < 5


def test_a_missing_key_stops_the_cloud_backends_before_any_request(monkeypatch):
    monkeypatch.delenv("MOONDREAM_API_KEY", raising=False)
    monkeypatch.delenv("DDS_CLOUDAPI_TOKEN", raising=False)
    for backend in ("moondream", "dinox"):
        with pytest.raises(ValueError, match=r"needs an API key in \$(MOONDREAM_API_KEY|DDS_CLOUDAPI_TOKEN)"):
            make_detector(DetectionSettings.from_config({"backend": backend, "classes": ["cat"]}), CPU)
    # a local Moondream server needs none
    local = DetectionSettings.from_config({"backend": "moondream", "classes": ["cat"],
                                           "moondream": {"endpoint": "http://localhost:2020/v1", "key_env": None}})
    assert make_detector(local, CPU).client.api_key is None


def test_retry_policy_backs_off_exponentially_and_honours_retry_after():
    waits, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise http_error(503, b'{"message": "busy"}')
        return "done"

    assert call_with_retries(flaky, RetryPolicy(retries=3, backoff_s=0.5), 1, sleep=waits.append) == "done"
    assert waits == [0.5, 1.0, 2.0]
    assert RetryPolicy(backoff_s=1).wait(0, http_error(429, b"", "7")) == 7
    assert RetryPolicy(backoff_s=1).wait(0, http_error(429, b"", "600")) == 60  # capped
    with pytest.raises(ApiError, match="HTTP 403: forbidden"):
        call_with_retries(lambda: (_ for _ in ()).throw(http_error(403, b"forbidden")), RetryPolicy(3, 0), 1,
                          sleep=waits.append)
    assert len(waits) == 3  # a 403 is never retried


def test_the_key_is_never_written_by_the_detect_job(api, frames_dir, tmp_path):
    """scripts/detect.py as Snakemake runs it (its snakemake object stood in for): the
    table, its record, the log and the cache hold no key, even when the server echoes it."""
    for name in ("a", "b"):
        Image.new("RGB", (200, 100)).save(tmp_path / f"{name}.jpg")
    frames = pd.DataFrame([{"video_id": v, "frame_index": 0, "frame_id": f"{v}/00000000", "timestamp_s": 0.0,
                            "width": 200, "height": 100, "path": str(tmp_path / f"{v}.jpg"), "kept": True,
                            "reason": ""} for v in ("a", "b")])
    FRAME.write(tmp_path / "before.parquet", FRAME.table(frames), {})
    # video a: a cat; video b: a 400 whose message echoes the request's key header
    api.plan["/v1/detect"] = [MOONDREAM_CAT, NOTHING, (400, {"message": f"bad key {KEY} for this image"}, {}, 0)]
    api.plan["/v1/point"] = [ok({"points": []})]
    section = {"enabled": True, "backend": "moondream", "model": None, "classes": ["cat", "face"], "threshold": 0.3,
               "moondream": {"endpoint": api.url + "/v1", "key_env": "TEST_DETECT_KEY", "points": True},
               "api": {"workers": 1, "timeout_s": 5, "retries": 0, "retry_backoff_s": 0.0}}
    fake = SimpleNamespace(
        input=SimpleNamespace(frames=str(tmp_path / "before.parquet"), videos=[]),
        output=[str(tmp_path / "detect.parquet")], log=[str(tmp_path / "detect.log")], threads=1,
        wildcards=SimpleNamespace(shard="s-abcdef-00000"),
        params=SimpleNamespace(settings=section, models={"device": "cpu"}, cache=str(tmp_path / "cache")))
    runpy.run_path(str(REPO / "scripts" / "detect.py"), init_globals={"snakemake": fake})
    table = FRAME.read(tmp_path / "detect.parquet").set_index("video_id")
    assert table.loc["a", "kept"] and table.loc["a", "category"].tolist() == ["cat"]
    assert not table.loc["b", "kept"]
    assert table.loc["b", "reason"] == "detection API: HTTP 400: bad key <redacted> for this image"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"detect.parquet", "detect.log", "a.json"} <= {p.name for p in written}  # b failed: not cached
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert "HTTP 400" in (tmp_path / "detect.log").read_text()
    from video_miner.tables import video_outcomes

    assert video_outcomes(tmp_path / "detect.parquet")["b"]["ok"] is False
