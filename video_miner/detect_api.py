"""Hosted detectors behind the :class:`~video_miner.detection.Detector` interface:
Moondream (the official ``moondream`` client, cloud API or a local Moondream server) and
DINO-X (its vendor's REST API, the requests ``dds-cloudapi-sdk`` makes).

What they share is the HTTP boundary (:mod:`video_miner.apiclient`, which the captions
stage's API backend uses too):

- the key comes only from the environment variable named by ``key_env``; it is sent in a
  header and never written to a file, a log line or a recorded error (any echo of it in
  a server's answer is replaced by ``<redacted>``);
- HTTP 429, 5xx and timeouts are retried with exponential backoff (a 429's
  ``Retry-After`` wins, up to 60 s); HTTP 400, 401, 403 (and other 4xx) are not: the
  frame is recorded with the status and the server's message; after a 401 or 403 the
  job sends nothing more (every later frame is recorded with the same reason);
- an answer that is not what the API documents (not JSON, keys missing, wrong types) is
  recorded as malformed, not retried;
- frames go out ``api.workers`` at a time (the work is waiting on the network).

A frame whose request failed is not kept (reason ``detection API: ...``), its video is
failed at ``detect`` with that reason, and nothing of it is cached: ``snakemake
--forcerun detect`` asks again for exactly those frames (the rest comes from the cache).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from video_miner.apiclient import (MESSAGE_CHARS, ApiError, Malformed, RetryPolicy, _number,  # noqa: F401
                                   api_key, as_api_error, call_with_retries, http_error, jpeg_data_url)
from video_miner.defaults import section_defaults

log = logging.getLogger(__name__)

_API_DEFAULTS = section_defaults("detection", "api")
_MOONDREAM_DEFAULTS = section_defaults("detection", "moondream")
_DINOX_DEFAULTS = section_defaults("detection", "dinox")


# --- the shared detector ------------------------------------------------------------------

from video_miner.detection import (API_BACKENDS, DETECTORS, Detector, DetectionSettings, Found,  # noqa: E402,F401
                                   clip_points, finalize, match_class)
from video_miner.imaging import shrink_to  # noqa: E402
from video_miner.logs import Progress  # noqa: E402
from video_miner.models import ModelSettings, load_image  # noqa: E402


class ApiDetector(Detector):
    """A hosted backend: each frame is one or more requests (``_frame``), ``api.workers``
    frames at a time. Subclasses set ``name`` and implement ``_frame(image) -> Found``
    (boxes in the frame's pixels, before :func:`finalize`)."""

    name = "api"
    key_required = True

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings, options: dict,
                 key_env: str | None):
        super().__init__(settings, model_settings)
        api = {**_API_DEFAULTS, **settings.api}
        self.options = options
        self.workers = int(api["workers"])
        self.timeout_s = float(api["timeout_s"])
        self.policy = RetryPolicy(int(api["retries"]), float(api["retry_backoff_s"]))
        self._key = api_key(key_env, self.key_required, self.name)
        self._refused: str | None = None  # the error after which nothing more is sent
        self._lock = threading.Lock()
        self.requests = 0  # requests sent, retries included

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<redacted>") if self._key else text

    def _call(self, fn: Callable[[], Any]) -> Any:
        """One API call with retries; counts every attempt."""
        def attempt():
            with self._lock:
                self.requests += 1
            return fn()

        return call_with_retries(attempt, self.policy, self.timeout_s)

    def _frame(self, image: Image.Image) -> Found:  # pragma: no cover - per backend
        raise NotImplementedError

    def _one(self, path: str) -> Found | None:
        image = load_image(path)
        if image is None:
            return None
        if self._refused is not None:
            return Found(error=f"detection API: not sent, the server refused the key earlier ({self._refused})")
        try:
            found = self._frame(image)
        except ApiError as error:
            reason = self._redact(str(error))
            if error.refused:
                with self._lock:
                    self._refused = self._refused or reason
            log.warning("%s: %s", path, reason)
            return Found(error=f"detection API: {reason}")
        boxes = finalize(found.boxes, image.width, image.height, self.settings)
        return Found(boxes, clip_points(found.points, image.width, image.height))

    def annotate(self, paths: Sequence[str]) -> list[Found | None]:
        progress = Progress("frames", len(paths))
        results: list[Found | None] = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for found in pool.map(self._one, list(paths)):
                results.append(found)
                progress.update()
        return results

    def detect(self, paths: Sequence[str]) -> list[np.ndarray | None]:
        """Boxes only; a frame whose request failed has none."""
        return [None if f is None else f.boxes for f in self.annotate(paths)]


# --- Moondream ----------------------------------------------------------------------------


def _moondream_list(answer: Any, key: str, what: str) -> list[dict]:
    """The list under ``key`` of a Moondream answer, every item an object, or Malformed."""
    items = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise Malformed(f"expected {{'{key}': [...]}}, got {str(answer)[:100]!r}")
    for item in items:
        if not isinstance(item, dict):
            raise Malformed(f"{what} is {item!r}")
    return items


def moondream_boxes(answer: Any, width: int, height: int, index: int) -> list[list[float]]:
    """Moondream's ``/detect`` answer (``{"objects": [{"x_min", "y_min", "x_max",
    "y_max"}]}``, shares of the frame) as rows ``x0, y0, x1, y1, score, class`` in pixels;
    Moondream gives no confidence, so every box scores 1.0."""
    rows = []
    for item in _moondream_list(answer, "objects", "an object"):
        x0, y0, x1, y1 = (_number(item.get(k), k) for k in ("x_min", "y_min", "x_max", "y_max"))
        rows.append([x0 * width, y0 * height, x1 * width, y1 * height, 1.0, index])
    return rows


def moondream_points(answer: Any, width: int, height: int, index: int) -> list[list[float]]:
    """Moondream's ``/point`` answer (``{"points": [{"x", "y"}]}``, shares of the frame)
    as rows ``x, y, class`` in pixels."""
    return [[_number(item.get("x"), "x") * width, _number(item.get("y"), "y") * height, index]
            for item in _moondream_list(answer, "points", "a point")]


@DETECTORS.register("moondream")
class MoondreamDetector(ApiDetector):
    """Moondream through the official client (``moondream.vl(api_key, endpoint)``): one
    ``/detect`` request per class and frame (and one ``/point`` per class when
    ``moondream.points``), the frame encoded once. The client opens its connections
    without a time limit, so the job's default socket timeout is set to
    ``api.timeout_s`` (a detect job is a process of its own)."""

    name = "moondream"

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        import moondream

        options = {**_MOONDREAM_DEFAULTS, **settings.moondream}
        self.key_required = _needs_key(options["endpoint"])
        super().__init__(settings, model_settings, options, options["key_env"])
        socket.setdefaulttimeout(self.timeout_s)
        self.client = moondream.vl(api_key=self._key, endpoint=options["endpoint"].rstrip("/"),
                                   model=settings.model)
        self.points = bool(options["points"])

    def _frame(self, image: Image.Image) -> Found:
        encoded = self.client.encode_image(image)
        boxes, points = [], []
        for index, name in enumerate(self.classes):
            answer = self._call(lambda: self.client.detect(encoded, name))
            boxes += moondream_boxes(answer, image.width, image.height, index)
            if self.points:
                answer = self._call(lambda: self.client.point(encoded, name))
                points += moondream_points(answer, image.width, image.height, index)
        return Found(np.array(boxes, np.float32).reshape(-1, 6), np.array(points, np.float32).reshape(-1, 3))


def _needs_key(endpoint: str) -> bool:
    """The cloud needs a key; a server on this machine or the local network may not."""
    host = urllib.parse.urlparse(endpoint).hostname or ""
    return host.endswith("moondream.ai")


# --- DINO-X -------------------------------------------------------------------------------

DINOX_TRIGGER = "/v2/task/dinox/detection"
DINOX_STATUS = "/v2/task_status/{task_uuid}"
DINOX_RETRY_CODE = 202001  # "busy, try again" in the answer's code


def dinox_task_uuid(answer: Any) -> str:
    """The trigger's answer: ``{"code": 0, "data": {"task_uuid": ...}}``."""
    if not isinstance(answer, dict) or "code" not in answer:
        raise Malformed(f"expected {{'code': ..., 'data': ...}}, got {str(answer)[:100]!r}")
    if answer["code"] == DINOX_RETRY_CODE:
        raise ApiError(f"server busy (code {DINOX_RETRY_CODE}): {answer.get('msg')}", retryable=True)
    if answer["code"] != 0:
        raise ApiError(f"task refused (code {answer['code']}): {answer.get('msg')}")
    uuid_ = (answer.get("data") or {}).get("task_uuid") if isinstance(answer.get("data"), dict) else None
    if not isinstance(uuid_, str) or not uuid_:
        raise Malformed("no data.task_uuid in the trigger's answer")
    return uuid_


def dinox_status(answer: Any) -> tuple[str, Any]:
    """A status answer: ``{"code": 0, "data": {"status": waiting|running|success|failed,
    "result": {...}, "error": ...}}`` as (status, result or error)."""
    if not isinstance(answer, dict) or answer.get("code") != 0 or not isinstance(answer.get("data"), dict):
        if isinstance(answer, dict) and isinstance(answer.get("code"), int) and answer["code"] != 0:
            raise ApiError(f"status check refused (code {answer['code']}): {answer.get('msg')}")
        raise Malformed(f"expected {{'code': 0, 'data': {{...}}}}, got {str(answer)[:100]!r}")
    data = answer["data"]
    status = data.get("status")
    if status not in ("waiting", "running", "success", "failed"):
        raise Malformed(f"unknown task status {status!r}")
    return status, data.get("result") if status == "success" else data.get("error")


def dinox_boxes(result: Any, classes: Sequence[str], scale: float) -> list[list[float]]:
    """A successful task's ``{"objects": [{"bbox": [x0, y0, x1, y1], "score", "category"}]}``
    (pixels of the image sent, ``scale`` times the frame) as rows in the frame's pixels;
    categories that are no configured class are left out."""
    objects = result.get("objects") if isinstance(result, dict) else None
    if not isinstance(objects, list):
        raise Malformed(f"expected a result with 'objects', got {str(result)[:100]!r}")
    rows = []
    for item in objects:
        if not isinstance(item, dict) or not isinstance(item.get("bbox"), list) or len(item["bbox"]) != 4:
            raise Malformed(f"an object without a 4-number bbox: {str(item)[:100]!r}")
        x0, y0, x1, y1 = (_number(v, "bbox") / scale for v in item["bbox"])
        index = match_class(str(item.get("category", "")), classes)
        if index is not None:
            rows.append([x0, y0, x1, y1, _number(item.get("score", 1.0), "score"), index])
    return rows


@DETECTORS.register("dinox")
class DinoXDetector(ApiDetector):
    """DINO-X through its REST API, as ``dds-cloudapi-sdk`` calls it: one task per frame
    with every class in one prompt (``cat.dog``), the frame sent as a JPEG of at most
    ``max_side`` pixels, then its status polled until done. Retries of a trigger reuse its
    ``Idempotency-Key``, so the server runs (and bills) a task once. The SDK itself is not
    used: it sends its users' token to the vendor's error tracker (Sentry) on import-time
    set-up, imports Flask without declaring it, and pulls in the non-headless OpenCV."""

    name = "dinox"
    default_model = "DINO-X-1.0"

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        options = {**_DINOX_DEFAULTS, **settings.dinox}
        super().__init__(settings, model_settings, options, options["key_env"])
        self.endpoint = options["endpoint"].rstrip("/")
        self.prompt = ".".join(self.classes)

    def _request(self, path: str, body: dict | None = None, headers: dict | None = None) -> Any:
        request = urllib.request.Request(self.endpoint + path, method="POST" if body is not None else "GET",
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Token": self._key or "", "Content-Type": "application/json",
                                                  **(headers or {})})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))

    def _frame(self, image: Image.Image) -> Found:
        sent = shrink_to(image, self.options["max_side"])
        scale = sent.width / image.width
        body = {"model": self.settings.model or self.default_model, "image": jpeg_data_url(sent),
                "prompt": {"type": "text", "text": self.prompt}, "targets": ["bbox"],
                "bbox_threshold": self.settings.threshold, "iou_threshold": self.options["iou_threshold"]}
        idempotency = {"Idempotency-Key": uuid.uuid4().hex}
        task = self._call(lambda: dinox_task_uuid(self._request(DINOX_TRIGGER, body, idempotency)))
        deadline = time.monotonic() + self.options["max_wait_s"]
        while True:
            status, result = self._call(lambda: dinox_status(self._request(DINOX_STATUS.format(task_uuid=task))))
            if status == "success":
                return Found(np.array(dinox_boxes(result, self.classes, scale), np.float32).reshape(-1, 6))
            if status == "failed":
                raise ApiError(f"task failed: {str(result)[:MESSAGE_CHARS]}")
            if time.monotonic() > deadline:
                raise ApiError(f"task not done after {self.options['max_wait_s']:g} s (detection.dinox.max_wait_s)")
            time.sleep(self.options["poll_interval_s"])
