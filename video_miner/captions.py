"""Captions for the final frames and the kept clips, behind one small interface: a
backend is one class registered in :data:`CAPTIONERS` with ``caption(images, clip) ->
Caption``.

- ``api``: any OpenAI-compatible ``/chat/completions`` endpoint (OpenRouter, vLLM, ...),
  images as base64 ``data:`` URLs, through the project's one HTTP boundary
  (:mod:`video_miner.apiclient`: key from ``key_env`` only, retries on 429/5xx/timeouts,
  4xx recorded and not retried);
- ``florence2``: Florence-2's caption tasks through transformers' native classes and the
  shared loader; a clip is captioned from its middle frame.

What a job sends is bounded three ways: ``max_workers`` requests in flight (itself capped
by the Snakemake resource ``api_requests`` the job got, so parallel shard jobs share one
key's rate), and the spend guard's :class:`SpendLedger` (``max_items`` items and
``max_total_tokens`` tokens with these settings, across every shard and rerun). A
caption is cached per item under a key over the model, the prompts and the generation
settings: a rerun sends nothing for what is done, and everything again when any changes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.apiclient import ApiError, Malformed, RetryPolicy, api_key, call_with_retries, jpeg_data_url
from video_miner.defaults import section_defaults
from video_miner.devices import Registry
from video_miner.fsutil import write_json_atomic
from video_miner.imaging import shrink_to
from video_miner.texts import CAPTION_SCHEMA

log = logging.getLogger(__name__)

_DEFAULTS = section_defaults("captions")
_API_DEFAULTS = section_defaults("captions", "api")
_FLORENCE_DEFAULTS = section_defaults("captions", "florence2")
TASKS = {"caption": "<CAPTION>", "detailed": "<DETAILED_CAPTION>", "more_detailed": "<MORE_DETAILED_CAPTION>"}
CAPTIONERS = Registry("caption backend")
CACHE_FORMAT = 1
NOT_SENT = "not sent"  # the reasons of items the spend guard or a refused key held back start so


@dataclass(frozen=True)
class CaptionSettings:
    backend: str = _DEFAULTS["backend"]
    system_prompt: str = _DEFAULTS["system_prompt"]
    prompt: str = _DEFAULTS["prompt"]
    clip_prompt: str = _DEFAULTS["clip_prompt"]
    max_tokens: int = _DEFAULTS["max_tokens"]
    temperature: float = _DEFAULTS["temperature"]
    frames_per_clip: int = _DEFAULTS["frames_per_clip"]
    max_items: int | None = _DEFAULTS["max_items"]
    max_total_tokens: int | None = _DEFAULTS["max_total_tokens"]
    api: dict = field(default_factory=dict)
    florence2: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict) -> "CaptionSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})

    @property
    def api_options(self) -> dict:
        return {**_API_DEFAULTS, **self.api}

    @property
    def florence_options(self) -> dict:
        return {**_FLORENCE_DEFAULTS, **self.florence2}

    def frames_for_clip(self) -> int:
        """Frames a clip is captioned from: ``frames_per_clip`` (api), its middle one (florence2)."""
        return self.frames_per_clip if self.backend == "api" else 1

    def cache_key(self) -> dict:
        """What a caption depends on: the backend's model and its generation settings, the
        prompts it sends. Not how requests are sent (workers, timeouts, retries, the key)."""
        if self.backend == "api":
            api = self.api_options
            return {"backend": "api", "base_url": api["base_url"].rstrip("/"), "model": api["model"],
                    "system_prompt": self.system_prompt, "prompt": self.prompt, "clip_prompt": self.clip_prompt,
                    "max_tokens": self.max_tokens, "temperature": self.temperature,
                    "frames_per_clip": self.frames_per_clip, "max_side": api["max_side"],
                    "jpeg_quality": api["jpeg_quality"], "format": CACHE_FORMAT}
        florence = self.florence_options
        return {"backend": "florence2", "model": florence["model"], "task": florence["task"],
                "num_beams": florence["num_beams"], "max_tokens": self.max_tokens, "format": CACHE_FORMAT}

    @property
    def model(self) -> str:
        return self.api_options["model"] if self.backend == "api" else self.florence_options["model"]


@dataclass
class Caption:
    """One item's answer: the text, or the error that kept it from being made."""

    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


class Captioner:
    """A caption backend: ``caption(images, clip)`` for one item (a frame: one image; a
    clip: its frames in order). Errors of one item come back in :class:`Caption`."""

    workers = 1  # items captioned at once

    def caption(self, images: Sequence[Image.Image], clip: bool) -> Caption:  # pragma: no cover - per backend
        raise NotImplementedError


@CAPTIONERS.register("api")
class ApiCaptioner(Captioner):
    """An OpenAI-compatible chat-completions endpoint: a system message, then the user
    message with the prompt and each image as a ``data:`` URL. ``max_workers`` requests
    in flight (``workers`` caps it: the job's share of ``api_requests``); after a 401 or
    403 nothing more is sent."""

    def __init__(self, settings: CaptionSettings, workers: int | None = None):
        api = settings.api_options
        self.settings = settings
        self.url = api["base_url"].rstrip("/") + "/chat/completions"
        self.workers = max(1, min(int(api["max_workers"]), workers or int(api["max_workers"])))
        self.timeout_s = float(api["timeout_s"])
        self.policy = RetryPolicy(int(api["retries"]), float(api["retry_backoff_s"]))
        self._key = api_key(api["key_env"], bool(api["key_env"]), "captions api")
        self._refused: str | None = None
        self._lock = threading.Lock()
        self.requests = 0  # attempts, retries included

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<redacted>") if self._key else text

    def body(self, images: Sequence[Image.Image], clip: bool) -> dict:
        s, api = self.settings, self.settings.api_options
        content: list[dict] = [{"type": "text", "text": s.clip_prompt if clip else s.prompt}]
        for image in images:
            image = shrink_to(image, int(api["max_side"]))
            content.append({"type": "image_url",
                            "image_url": {"url": jpeg_data_url(image, int(api["jpeg_quality"]))}})
        messages = [{"role": "user", "content": content}]
        if s.system_prompt:
            messages.insert(0, {"role": "system", "content": s.system_prompt})
        return {"model": api["model"], "messages": messages, "max_tokens": s.max_tokens,
                "temperature": s.temperature}

    def _post(self, data: bytes) -> Any:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=data, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))

    def caption(self, images: Sequence[Image.Image], clip: bool) -> Caption:
        if self._refused is not None:
            return Caption(error=f"{NOT_SENT}: the server refused the key earlier ({self._refused})")
        data = json.dumps(self.body(images, clip)).encode()

        def attempt():
            with self._lock:
                self.requests += 1
            return parse_answer(self._post(data))

        try:
            return call_with_retries(attempt, self.policy, self.timeout_s)
        except ApiError as error:
            reason = self._redact(str(error))
            if error.refused:
                with self._lock:
                    self._refused = self._refused or reason
            return Caption(error=f"captions API: {reason}")


def parse_answer(answer: Any) -> Caption:
    """A chat-completions answer: ``choices[0].message.content`` (a string, or a list of
    text parts) and ``usage``'s token counts (absent on some servers)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
        raise Malformed(f"expected {{'choices': [...]}}, got {str(answer)[:100]!r}")
    message = answer["choices"][0].get("message") if isinstance(answer["choices"][0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise Malformed(f"no text in choices[0].message: {str(message)[:100]!r}")
    if not content.strip():
        raise Malformed("the caption is empty")
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}

    def count(key):
        value = usage.get(key)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    return Caption(" ".join(content.split()), count("prompt_tokens"), count("completion_tokens"))


@CAPTIONERS.register("florence2")
class Florence2Captioner(Captioner):
    """Florence-2's caption task (``<CAPTION>``, ``<DETAILED_CAPTION>``,
    ``<MORE_DETAILED_CAPTION>``) through the shared loader; greedy or beam decoding
    (``temperature`` does not apply). A clip is captioned from its middle frame."""

    def __init__(self, settings: CaptionSettings, model_settings=None):
        from video_miner.models import ModelSettings, load_hf_model

        options = settings.florence_options
        self.settings = settings
        self.task = TASKS[options["task"]]
        self.num_beams = int(options["num_beams"])
        self.loaded = load_hf_model(options["model"], model_settings or ModelSettings(),
                                    "AutoModelForImageTextToText", "AutoProcessor", role="captioner")
        # The decoder cannot generate past its position table.
        limit = getattr(self.loaded.model.config.get_text_config(), "max_position_embeddings", None)
        self.max_new_tokens = min(settings.max_tokens, limit - 2) if limit else settings.max_tokens
        self._lock = threading.Lock()

    def caption(self, images: Sequence[Image.Image], clip: bool) -> Caption:
        import torch

        from video_miner.models import to_device

        image = images[len(images) // 2].convert("RGB")
        processor, model = self.loaded.processor, self.loaded.model
        inputs = to_device(processor(text=self.task, images=image, return_tensors="pt"), self.loaded.device,
                           self.loaded.dtype)
        with self._lock, torch.inference_mode():
            generated = model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                       do_sample=False)
        text = processor.batch_decode(generated, skip_special_tokens=False)[0]
        parsed = processor.post_process_generation(text, task=self.task, image_size=image.size)[self.task]
        text = " ".join(str(parsed).split())
        if not text:
            return Caption(error="florence2: the caption is empty")
        prompt_tokens = int(inputs["input_ids"].shape[-1]) if "input_ids" in inputs else None
        return Caption(text, prompt_tokens, int(generated.shape[-1]))


def make_captioner(settings: CaptionSettings, workers: int | None = None, model_settings=None) -> Captioner:
    if settings.backend == "api":
        return CAPTIONERS.create("api", settings, workers)
    return CAPTIONERS.create(settings.backend, settings, model_settings)


# --- the spend guard ------------------------------------------------------------------------


class SpendLedger:
    """Items sent and tokens used with one set of caption settings, across every shard
    job and rerun, in one small JSON file guarded by a file lock (parallel jobs on one
    machine or a shared filesystem). ``claim()`` before each item: False once
    ``max_items`` items were sent or ``max_total_tokens`` tokens used. Requests already in
    flight may pass the token limit by what they use (at most ``max_workers`` answers)."""

    def __init__(self, path: str | os.PathLike, max_items: int | None, max_total_tokens: int | None):
        self.path = Path(path)
        self.max_items = max_items
        self.max_total_tokens = max_total_tokens

    def _update(self, change: Callable[[dict], Any]) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text())
            except (OSError, ValueError):
                state = {"items": 0, "tokens": 0}
            result = change(state)
            write_json_atomic(self.path, state)
            return result

    def state(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"items": 0, "tokens": 0}

    def refusal(self, state: dict) -> str | None:
        if self.max_items is not None and state["items"] >= self.max_items:
            return f"{NOT_SENT}: captions.max_items ({self.max_items}) reached"
        if self.max_total_tokens is not None and state["tokens"] >= self.max_total_tokens:
            return f"{NOT_SENT}: captions.max_total_tokens ({self.max_total_tokens}) reached"
        return None

    def claim(self) -> str | None:
        """None when the item may be sent (and counts it), else why not."""
        def take(state):
            reason = self.refusal(state)
            if reason is None:
                state["items"] += 1
            return reason

        return self._update(take)

    def spend(self, tokens: int) -> None:
        if tokens:
            self._update(lambda state: state.__setitem__("tokens", state["tokens"] + tokens))

    def items_left(self) -> int | None:
        if self.max_items is None:
            return None
        return max(0, self.max_items - self.state()["items"])


def ledger_path(cache_root: str | os.PathLike, settings: CaptionSettings) -> Path:
    """One ledger per set of caption settings, beside the shard caches."""
    from video_miner.shardjob import fingerprint

    return Path(cache_root).parent / f"spend-{fingerprint(settings.cache_key())}.json"


# --- items --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing to caption. ``source`` is what its caption was made from (a frame file's
    size and time; a clip's video file and bounds): a cached caption is reused only for
    the same source."""

    video_id: str
    target: str  # frame | clip
    key: str  # unique in the shard: f<frame_index> or the clip id
    frame_index: int | None = None
    clip_id: str | None = None
    path: str | None = None  # the frame's image, or the clip's video
    times_s: tuple[float, ...] = ()  # the clip's frames to caption
    source: Any = None


def frame_items(frames: pd.DataFrame) -> list[Item]:
    """The items of a frame table (``video_id``, ``frame_index``, ``path``)."""
    from video_miner.shardjob import file_identity

    return [Item(v, "frame", f"f{int(i)}", frame_index=int(i), path=p, source=[p, file_identity(p)])
            for v, i, p in zip(frames["video_id"], frames["frame_index"], frames["path"])]


def clip_times(start_s: float, end_s: float, count: int) -> tuple[float, ...]:
    """The middles of ``count`` equal parts of a clip (one: its middle frame)."""
    length = max(0.0, end_s - start_s)
    return tuple(round(start_s + length * (k + 0.5) / count, 6) for k in range(count))


def clip_items(clips: pd.DataFrame, files: dict[str, str], sources: dict[str, Any], count: int) -> list[Item]:
    """The items of a clip table, each sampled at ``count`` times from its video's file;
    ``sources``: what each video's file is (its location and size)."""
    return [Item(v, "clip", c, clip_id=c, path=files.get(v), times_s=clip_times(float(s), float(e), count),
                 source=[sources.get(v), float(s), float(e)])
            for v, c, s, e in zip(clips["video_id"], clips["clip_id"], clips["start_s"], clips["end_s"])]


def load_frame_image(item: Item) -> list[Image.Image]:
    """A frame item's image."""
    from video_miner.models import load_image

    image = load_image(item.path)
    if image is None:
        raise ValueError(f"unreadable image {item.path}")
    return [image]


def frames_at(path: str, times_s: Sequence[float]) -> list[Image.Image]:
    """The frames shown at ``times_s`` (ascending) of a video: one seek per time, then
    decoding up to it."""
    from video_miner.video import open_video

    container, stream = open_video(path)
    images = []
    with container:
        base = stream.time_base
        for t in times_s:
            container.seek(int(t / base) + (stream.start_time or 0), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                if chosen is not None and frame.time is not None and frame.time > t:
                    break
                chosen = frame
                if frame.time is not None and frame.time >= t:
                    break
            if chosen is None:
                raise ValueError(f"no frame at {t:.2f} s")
            images.append(chosen.to_image())
    return images


# Clip items' frames are decoded this many at a time (whole videos) before they are
# captioned, so the frames waiting on disk stay few (raw: 6 MB a 1080p frame).
CLIP_CHUNK_ITEMS = 16


def clip_isolation(limits, durations: dict[str, float], sizes: dict[str, int]):
    """A clip's frames decoded in a worker process under the clip-level limits: a video
    that hangs or crashes the decoder costs only its clips (``durations`` and ``sizes``
    of the videos give their time limits)."""
    from video_miner.workers import Isolation

    return Isolation("captions", "decoder", memory_bytes=limits.memory_bytes,
                     timeout_s=lambda v: limits.clips_timeout_s(durations.get(v), sizes.get(v)))


def decode_clip_frames(items: Sequence[Item], scratch: Path, isolation=None) -> dict[tuple[str, str], list[str] | str]:
    """The frames of each clip item, decoded one video at a time (in a worker process
    under ``isolation``, see :func:`clip_isolation`) into files in ``scratch``: per
    ``(video_id, key)`` its files in order, or the reason they could not be had. Raw
    arrays, not PNG: writing a 1080p PNG takes ~0.2-1 s, an array ~10 ms."""
    from video_miner.workers import each_video

    scratch.mkdir(parents=True, exist_ok=True)
    by_video: dict[str, list[Item]] = {}
    for item in items:
        by_video.setdefault(item.video_id, []).append(item)

    def decode(video_id: str) -> dict:  # in the worker: only the decoder
        files: dict[str, list[str] | str] = {}
        for number, item in enumerate(by_video[video_id]):
            try:
                if not item.path:
                    raise ValueError("its video file is missing")
                files[item.key] = []
                for k, image in enumerate(frames_at(item.path, item.times_s)):
                    path = scratch / f"{video_id}.{number}.{k}.npy"  # exactly what frames_at gave
                    np.save(path, np.asarray(image))
                    files[item.key].append(str(path))
            except Exception as exc:  # noqa: BLE001 - one clip's bad frames fail only that clip
                files[item.key] = f"{type(exc).__name__}: {exc}"
        return files

    decoded = {}
    for video_id, files, reason in each_video(list(by_video), decode, 1, isolation):
        for item in by_video[video_id]:
            decoded[(video_id, item.key)] = reason if reason is not None else files[item.key]
    return decoded


def _decoded_images(files: list[str]) -> list[Image.Image]:
    images = []
    for path in files:
        images.append(Image.fromarray(np.load(path)))
        os.unlink(path)
    return images


def _chunks(numbers: list[int], items: Sequence[Item], size: int) -> list[list[int]]:
    """``numbers`` (sorted by video) in runs of about ``size``, a video never split."""
    chunks: list[list[int]] = []
    for n in numbers:
        if not chunks or (len(chunks[-1]) >= size and items[chunks[-1][-1]].video_id != items[n].video_id):
            chunks.append([])
        chunks[-1].append(n)
    return chunks


# --- a shard ------------------------------------------------------------------------------


class ItemCache:
    """Per-video caption records in a :class:`~video_miner.shardjob.VideoCache` keyed by
    the settings: ``{item key: {source, caption, tokens}}``, written as each item is done."""

    def __init__(self, root: str | os.PathLike, settings: CaptionSettings):
        from video_miner.shardjob import VideoCache

        self.cache = VideoCache(root, settings.cache_key())
        self._records: dict[str, dict] = {}
        self._lock = threading.Lock()

    def get(self, item: Item) -> dict | None:
        with self._lock:
            if item.video_id not in self._records:
                self._records[item.video_id] = (self.cache.load(item.video_id) or {}).get("items", {})
            done = self._records[item.video_id].get(f"{item.target}:{item.key}")
        return done if done is not None and done.get("source") == _plain(item.source) else None

    def put(self, item: Item, caption: Caption) -> None:
        with self._lock:
            items = self._records.setdefault(item.video_id, {})
            items[f"{item.target}:{item.key}"] = {"source": _plain(item.source), "caption": caption.text,
                                                  "prompt_tokens": caption.prompt_tokens,
                                                  "completion_tokens": caption.completion_tokens}
            self.cache.save(item.video_id, {"items": items})

    def prune(self, video_ids: Sequence[str]) -> None:
        self.cache.prune(video_ids)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def caption_items(items: Sequence[Item], make: Callable[[], Captioner], cache: ItemCache, ledger: SpendLedger,
                  workers: int = 1, model: str | None = None, isolation=None) -> tuple[pa.Table, dict]:
    """Caption ``items``: cached ones from the cache, the rest ``workers`` at a time
    (the backend is made only when something is sent); clips' frames are decoded first,
    a few videos at a time, under ``isolation`` (:func:`decode_clip_frames`). Returns the
    captions table and the job's record: counts, failures by reason, tokens, per-video
    outcomes (a video whose item failed is failed at ``captions`` with that reason; items
    the spend guard held back are recorded, and do not fail their video)."""
    from video_miner.logs import Progress
    from video_miner.shardjob import Lazy

    cache.prune(list(dict.fromkeys(i.video_id for i in items)))
    captioner = Lazy(make)
    results: dict[int, tuple[Caption, bool]] = {}
    todo = []
    for n, item in enumerate(items):
        done = cache.get(item)
        if done is not None:
            results[n] = (Caption(done["caption"], done["prompt_tokens"], done["completion_tokens"]), True)
        else:
            todo.append(n)
    if results:
        log.info("%d of %d items already captioned with these settings", len(results), len(items))
    progress = Progress("items", len(todo))
    decoded: dict[tuple[str, str], list[str] | str] = {}

    def one(n: int) -> tuple[int, Caption]:
        item = items[n]
        held = ledger.claim()
        if held is not None:
            return n, Caption(error=held)
        found = decoded.pop((item.video_id, item.key), None)
        if isinstance(found, str):  # its frames could not be decoded: the reason
            return n, Caption(error=f"unreadable clip: {found}")
        try:
            images = load_frame_image(item) if item.target == "frame" else _decoded_images(found)
        except Exception as exc:  # noqa: BLE001 - one item's bad input is that item's failure
            return n, Caption(error=f"unreadable {item.target}: {type(exc).__name__}: {exc}")
        try:
            caption = captioner().caption(images, item.target == "clip")
        except Exception as exc:  # noqa: BLE001 - a local model's error on one item
            caption = Caption(error=f"{type(exc).__name__}: {exc}")
        if caption.error is None:
            cache.put(item, caption)
            ledger.spend((caption.prompt_tokens or 0) + (caption.completion_tokens or 0))
        else:
            log.warning("%s %s of %s: %s", item.target, item.key, item.video_id, caption.error)
        return n, caption

    if todo:
        # The spend guard may refuse everything: only then is no backend made.
        first_refusal = ledger.refusal(ledger.state())
        if first_refusal is not None:
            for n in todo:
                results[n] = (Caption(error=first_refusal), False)
            todo = []
    frames = [n for n in todo if items[n].target == "frame"]
    clips = sorted((n for n in todo if items[n].target == "clip"), key=lambda n: items[n].video_id)
    # Frames first, then clips a few videos at a time: each chunk's frames are decoded
    # (forking the decoder with no caption threads running) and then captioned.
    for chunk in [frames] * bool(frames) + _chunks(clips, items, CLIP_CHUNK_ITEMS):
        if items[chunk[0]].target == "clip":
            decoded = decode_clip_frames([items[n] for n in chunk], Path(cache.cache.root) / "clip_frames", isolation)
        pool_size = max(1, min(workers, captioner().workers, len(chunk)))
        with ThreadPoolExecutor(max_workers=pool_size) as pool:
            for n, caption in pool.map(one, chunk):
                results[n] = (caption, False)
                progress.update()
        for files in decoded.values():  # the frames of clips the spend guard held back
            for path in files if isinstance(files, list) else ():
                Path(path).unlink(missing_ok=True)
    return _table(items, results, model), _record(items, results)


def _table(items: Sequence[Item], results: dict[int, tuple[Caption, bool]], model: str | None) -> pa.Table:
    rows = []
    for n, item in enumerate(items):
        caption, cached = results[n]
        rows.append({"video_id": item.video_id, "target": item.target, "frame_index": item.frame_index,
                     "clip_id": item.clip_id, "kept": caption.error is None, "reason": caption.error or "",
                     "caption": caption.text if caption.error is None else None, "model": model,
                     "prompt_tokens": caption.prompt_tokens, "completion_tokens": caption.completion_tokens,
                     "cached": cached})
    return pa.Table.from_pylist(rows, schema=CAPTION_SCHEMA)


def _record(items: Sequence[Item], results: dict[int, tuple[Caption, bool]]) -> dict:
    failed: dict[str, int] = {}
    outcomes: dict[str, dict] = {}
    tokens = {"prompt": 0, "completion": 0}
    counts = {"frames": 0, "clips": 0, "captioned": 0, "cached": 0, "sent": 0}
    for n, item in enumerate(items):
        caption, cached = results[n]
        outcome = outcomes.setdefault(item.video_id, {"ok": True, "reason": None, "captioned": 0})
        counts[f"{item.target}s"] += 1
        if caption.error is None:
            counts["captioned"] += 1
            outcome["captioned"] += 1
        else:
            failed[caption.error] = failed.get(caption.error, 0) + 1
            if not caption.error.startswith(NOT_SENT) and outcome["ok"]:
                outcome.update(ok=False, reason=caption.error)
        if cached:
            counts["cached"] += 1
        elif not (caption.error or "").startswith(NOT_SENT):
            counts["sent"] += 1
            tokens["prompt"] += caption.prompt_tokens or 0
            tokens["completion"] += caption.completion_tokens or 0
    return {**counts, "failed": failed, "tokens": {**tokens, "total": tokens["prompt"] + tokens["completion"]},
            "video_outcomes": outcomes}


# --- what a run would send ----------------------------------------------------------------


def _kept_count(path: str, shard: str | None = None) -> int:
    """Kept rows of a table; of a run-wide one (with a ``shard`` column), of ``shard``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    filters = [("shard", "==", shard)] if shard is not None and "shard" in pq.read_schema(path).names else None
    return int(pc.sum(pq.read_table(path, columns=["kept"], filters=filters)["kept"]).as_py() or 0)


def plan_to_send(settings: CaptionSettings, shards: dict[str, tuple[str | None, str | None, str]],
                 cache_pattern: str) -> str:
    """About how many items the captions jobs would send, for ``snakemake -n``: per
    shard, its (final frame table, final clip table, captions table). A shard whose
    captions table is newer than its inputs and made with these settings sends nothing
    (Snakemake does not run it again); otherwise its kept frames and clips minus those its
    captions table holds with these settings. Approximate both ways, to stay two small
    reads per shard: copies of videos are left out only when the job runs, and an item
    whose frame file was made again is captioned again. Shards whose tables do not exist
    yet are counted once they do."""
    from video_miner.shardjob import fingerprint
    from video_miner.tables import read_metadata

    key = fingerprint(settings.cache_key())
    to_send = done = unknown = 0
    for shard, (frames, clips, captions) in shards.items():
        sources = [p for p in (frames, clips) if p]
        if not all(os.path.exists(p) for p in sources):
            unknown += 1
            continue
        items = sum(_kept_count(p, shard) for p in sources)
        captioned = 0
        if os.path.exists(captions) and read_metadata(captions).get("settings_key") == key:
            captioned = _kept_count(captions)
            if all(os.path.getmtime(captions) >= os.path.getmtime(p) for p in sources):
                done += captioned
                continue
        done += min(captioned, items)
        to_send += max(0, items - captioned)
    message = f"about {to_send} items would be sent ({settings.backend}: {settings.model}); {done} captioned already"
    if unknown:
        message += f"; {unknown} of {len(shards)} shard(s) not counted yet (their frames or clips do not exist yet)"
    if settings.max_items is not None:
        ledger = SpendLedger(ledger_path(cache_pattern.replace("{shard}", "x"), settings), settings.max_items, None)
        message += f"; captions.max_items lets {ledger.items_left()} more go out"
    return message
