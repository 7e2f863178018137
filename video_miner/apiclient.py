"""The HTTP boundary every hosted service shares (hosted detectors, caption APIs):

- a key comes only from the environment variable a config names (``key_env``); it is
  sent in a header and never written to a file, a log line or a recorded error (any echo
  of it in a server's answer is replaced by ``<redacted>``);
- HTTP 429, 5xx and timeouts are retried with exponential backoff (a 429's
  ``Retry-After`` wins, up to 60 s); HTTP 400, 401, 403 (and other 4xx) are not: the item
  is recorded with the status and the server's message; after a 401 or 403 a job sends
  nothing more;
- an answer that is not what the API documents (not JSON, keys missing, wrong types) is
  recorded as malformed, not retried.

Requests go through the standard library (``urllib``): one HTTP client for every
service, no client library that retries, logs or reads keys on its own terms.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import time
import urllib.error
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0
MESSAGE_CHARS = 300  # of a server's error message, in a record


class ApiError(Exception):
    """A request that failed: ``status`` (None without an HTTP answer), ``message``,
    whether another attempt may succeed, and the wait a 429 asked for."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    @property
    def refused(self) -> bool:
        """The key was refused: no later request of this job can succeed."""
        return self.status in (401, 403)

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.status is not None else self.message


class Malformed(ApiError):
    """An answer the API does not document."""

    def __init__(self, message: str):
        super().__init__(f"malformed answer: {message}")


def _server_message(body: bytes) -> str:
    """The message in an error answer: its JSON ``message``/``msg``/``error``/``detail``,
    else the text itself, shortened."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "msg", "error", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg")
            if isinstance(value, str) and value:
                text = value
                break
    return " ".join(text.split())[:MESSAGE_CHARS] or "(no message)"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: back off as usual


def http_error(status: int, body: bytes, retry_after: str | None = None) -> ApiError:
    """An HTTP error answer as an :class:`ApiError`: 429 and 5xx are retryable."""
    return ApiError(_server_message(body), status, retryable=status == 429 or status >= 500,
                    retry_after=_retry_after(retry_after) if status == 429 else None)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc).lower()


def as_api_error(exc: BaseException, timeout_s: float) -> ApiError:
    """What went wrong in a urllib call, as an :class:`ApiError`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        try:
            body = exc.read()
        except Exception:  # noqa: BLE001 - the status is what matters
            body = b""
        return http_error(exc.code, body or str(exc.reason).encode(), exc.headers.get("Retry-After")
                          if exc.headers else None)
    if isinstance(exc, urllib.error.URLError):
        if _is_timeout(exc.reason if isinstance(exc.reason, BaseException) else exc):
            return ApiError(f"timed out after {timeout_s:g} s", retryable=True)
        return ApiError(f"cannot reach the server: {exc.reason}")
    if _is_timeout(exc):
        return ApiError(f"timed out after {timeout_s:g} s", retryable=True)
    if isinstance(exc, (ValueError, KeyError, TypeError, IndexError)):  # JSONDecodeError is a ValueError
        return Malformed(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (ConnectionError, OSError)):
        return ApiError(f"connection failed: {exc}")
    raise exc


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_s: float = 1.0

    def wait(self, attempt: int, error: ApiError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_S)
        return min(self.backoff_s * 2**attempt, MAX_RETRY_AFTER_S)


def call_with_retries(fn: Callable[[], Any], policy: RetryPolicy, timeout_s: float,
                      sleep: Callable[[float], None] = time.sleep) -> Any:
    """``fn()``, tried again after retryable failures (``policy.retries`` times at most);
    raises the last :class:`ApiError`."""
    for attempt in range(policy.retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below; anything else is re-raised
            error = as_api_error(exc, timeout_s)
            if not error.retryable or attempt == policy.retries:
                if error.retryable:
                    error = ApiError(f"{error} (after {attempt + 1} attempts)", error.status)
                raise error from None
            wait = policy.wait(attempt, error)
            log.warning("request failed (%s); attempt %d of %d in %.1f s", error, attempt + 2,
                        policy.retries + 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")


def api_key(key_env: str | None, required: bool, backend: str) -> str | None:
    """The key from the environment variable ``key_env`` names; a missing one stops the
    job when the server needs one."""
    value = os.environ.get(key_env) if key_env else None
    if required and not value:
        where = f"${key_env}" if key_env else "an environment variable (<section>.key_env)"
        raise ValueError(f"the {backend} backend needs an API key in {where}, which is not set")
    return value or None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise Malformed(f"{what} is {value!r}, not a number")
    return float(value)


def jpeg_data_url(image: Image.Image, quality: int = 95) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
