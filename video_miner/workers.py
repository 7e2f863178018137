"""Per-video work in long-lived child processes, so a video that hangs, crashes its
decoder or eats memory costs only itself.

Each worker is a forked child that takes one video at a time over a pipe and stays up
for the next (imports and per-process state such as a yt-dlp instance are paid once).
The parent enforces the limits: a wall-time deadline per video (the worker is killed and
replaced), an address-space cap set in the child (allocations past it raise
``MemoryError`` there), and a worker that dies (a segfault in a decoder) fails only the
video it held. A new worker is forked on demand, so the shard goes on.

Test hook: ``VIDEO_MINER_FAULTS="<stage>:<video_id>=<hang|crash|memory>,..."`` makes the
worker child itself hang, segfault or allocate without bound on that video, so tests
exercise the real isolation path (a child process, a real signal, a real rlimit).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

log = logging.getLogger(__name__)

FAULTS_ENV = "VIDEO_MINER_FAULTS"
_POLL_S = 1.0  # how often a ``watch`` callback runs while videos are in flight


@dataclass(frozen=True)
class Isolation:
    """Limits for one stage's per-video work. ``timeout_s(video_id)`` gives the video's
    wall-time limit (None: none); ``watch(video_id)`` is polled while it runs and a
    reason it returns stops the video (a download growing past its size limit)."""

    stage: str
    crash_label: str  # what crashed, in the reason: "decoder crashed (signal 11)"
    timeout_s: Callable[[str], float | None] = lambda video_id: None
    memory_bytes: int | None = None
    watch: Callable[[str], str | None] | None = None

    def memory_reason(self) -> str:
        return f"memory limit {self.memory_bytes / 2**30:g} GB exceeded in {self.stage}"


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name}, signal {number}"
    except ValueError:
        return f"signal {number}"


def _inject_fault(stage: str, video_id: str, memory_bytes: int | None) -> None:
    spec = os.environ.get(FAULTS_ENV)
    if not spec:
        return
    faults = dict(item.strip().split("=", 1) for item in spec.split(",") if "=" in item)
    fault = faults.get(f"{stage}:{video_id}")
    if fault == "hang":
        while True:  # busy, as a decoder stuck in a loop is
            pass
    if fault == "crash":
        import ctypes
        import faulthandler

        faulthandler.disable()  # an expected crash: no traceback dump in the test's output
        ctypes.string_at(0)  # a real segfault, in C
    if fault == "memory":
        if not memory_bytes:
            raise RuntimeError("memory fault injected without a memory limit")
        hoard = []
        while True:
            hoard.append(bytearray(64 * 2**20))


def _address_space() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # not Linux: the cap counts the inherited mappings too
    return 0


def _die_with_parent() -> None:
    """Ask Linux to kill this child when the shard job dies (a hung worker would outlive a
    killed job otherwise); elsewhere the closed pipe ends idle workers."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn, work: Callable[[str], dict], isolation: Isolation) -> None:
    _die_with_parent()
    if isolation.memory_bytes:
        import resource

        # On top of what the fork inherits (a parent with a model loaded maps gigabytes
        # it never touches here): the cap is on what one video may allocate.
        cap = _address_space() + isolation.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    while True:
        try:
            video_id = conn.recv()
        except (EOFError, OSError):
            return
        if video_id is None:
            return
        try:
            _inject_fault(isolation.stage, video_id, isolation.memory_bytes)
            reply = ("ok", work(video_id))
        except MemoryError:
            reply = ("memory", None)
        except Exception as exc:  # noqa: BLE001 - any error of one video is that video's failure
            log.exception("%s failed", video_id)
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))


class _Worker:
    def __init__(self, work: Callable[[str], dict], isolation: Isolation):
        context = multiprocessing.get_context("fork")  # the work closure is inherited, not pickled
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, work, isolation), daemon=True)
        self.process.start()
        child.close()
        self.video_id: str | None = None
        self.deadline = math.inf
        self.limit_s: float | None = None

    def give(self, video_id: str, limit_s: float | None) -> None:
        self.video_id = video_id
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s if limit_s else math.inf
        self.conn.send(video_id)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        self.kill()


def isolated_map(video_ids: list[str], work: Callable[[str], dict], workers: int,
                 isolation: Isolation) -> Iterator[tuple[str, dict | None, str | None]]:
    """``work(video_id)`` in ``workers`` child processes; yields ``(video_id, record,
    None)`` or ``(video_id, None, reason)`` as each video ends, in completion order."""
    queue = deque(video_ids)
    pool: list[_Worker] = []
    try:
        while queue or any(w.video_id is not None for w in pool):
            for worker in pool:
                if worker.video_id is None and queue:
                    video_id = queue.popleft()
                    worker.give(video_id, isolation.timeout_s(video_id))
            while queue and len(pool) < workers:
                pool.append(_Worker(work, isolation))
                video_id = queue.popleft()
                pool[-1].give(video_id, isolation.timeout_s(video_id))
            busy = [w for w in pool if w.video_id is not None]
            wake = min(w.deadline for w in busy) - time.monotonic()
            if isolation.watch is not None:
                wake = min(wake, _POLL_S)
            multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                                            timeout=max(0.0, wake) if wake != math.inf else None)
            for worker in busy:
                outcome = _check(worker, isolation)
                if outcome is None:
                    continue
                video_id, record, reason, retire = outcome
                worker.video_id = None
                if retire:
                    worker.kill()
                    pool.remove(worker)
                yield video_id, record, reason
    finally:
        for worker in pool:
            if worker.video_id is None:
                worker.stop()
            else:
                worker.kill()


def each_video(video_ids: list[str], work: Callable[[str], dict], workers: int,
               isolation: Isolation | None) -> Iterator[tuple[str, dict | None, str | None]]:
    """:func:`isolated_map` under ``isolation``; without one (tests, a stage told not to
    isolate), ``work`` in this process one video at a time, an exception costing only its
    video. Yields as each video ends."""
    if isolation is not None:
        yield from isolated_map(video_ids, work, workers, isolation)
        return
    for video_id in video_ids:
        try:
            record = work(video_id)
        except Exception as exc:  # noqa: BLE001 - any error of one video is that video's failure
            log.exception("%s failed", video_id)
            yield video_id, None, f"{type(exc).__name__}: {exc}"
        else:
            yield video_id, record, None


def _watch(isolation: Isolation, video_id: str) -> str | None:
    try:
        return isolation.watch(video_id)
    except Exception:  # noqa: BLE001 - a broken check must not end the shard
        log.exception("%s: checking its limits failed", video_id)
        return None


def _check(worker: _Worker, isolation: Isolation) -> tuple[str, dict | None, str | None, bool] | None:
    """What became of the worker's video: None while it runs on, else (video, record,
    reason, whether the worker must be replaced)."""
    video_id = worker.video_id
    if worker.conn.poll():  # a reply goes before the exit that may follow it
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            kind, value = "died", None
        if kind == "ok":
            return video_id, value, None, False
        if kind == "memory":  # a worker that ran out may be left in a bad state
            return video_id, None, isolation.memory_reason(), True
        if kind == "error":
            return video_id, None, value, False
    elif worker.process.is_alive():
        if time.monotonic() >= worker.deadline:
            log.error("%s: timed out after %.0f s in %s; worker killed", video_id, worker.limit_s, isolation.stage)
            return video_id, None, f"timed out after {worker.limit_s:.0f} s in {isolation.stage}", True
        if isolation.watch is not None and (reason := _watch(isolation, video_id)):
            log.error("%s: %s; worker killed", video_id, reason)
            return video_id, None, reason, True
        return None
    worker.process.join()
    code = worker.process.exitcode
    how = f"({_signal_name(-code)})" if code is not None and code < 0 else f"(exit code {code})"
    log.error("%s: %s crashed %s in %s", video_id, isolation.crash_label, how, isolation.stage)
    return video_id, None, f"{isolation.crash_label} crashed {how}", True


def _limit_default(key: str) -> float:
    from video_miner.defaults import section_defaults

    return section_defaults("limits")[key]


_LOW_BITRATE = 0.5e6 / 8  # bytes per second: a video of unknown duration is assumed no denser


@dataclass(frozen=True)
class Limits:
    """The ``limits`` config section (defaults in config/schema.yaml)."""

    memory_gb: float | None
    download_s: float | None
    download_gb: float | None
    extract_s: float
    extract_s_per_video_s: float
    probe_s: float
    clips_s: float = field(default_factory=lambda: _limit_default("clips_s"))
    clips_s_per_video_s: float = field(default_factory=lambda: _limit_default("clips_s_per_video_s"))

    @classmethod
    def from_config(cls, section: dict) -> "Limits":
        from video_miner.defaults import section_defaults

        return cls(**{**section_defaults("limits"), **section})

    @property
    def memory_bytes(self) -> int | None:
        return int(self.memory_gb * 2**30) if self.memory_gb else None

    def extract_timeout_s(self, duration_s: float | None, filesize: int | None) -> float:
        """The floor plus time per second of video; a duration the probe did not find is
        estimated from the file size, generously (at a low bitrate)."""
        return self.extract_s + self.extract_s_per_video_s * _duration(duration_s, filesize)

    def clips_timeout_s(self, duration_s: float | None, filesize: int | None) -> float:
        """The same for one video's work in a clip-level job (shot detection, cutting)."""
        return self.clips_s + self.clips_s_per_video_s * _duration(duration_s, filesize)


def _duration(duration_s: float | None, filesize: int | None) -> float:
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        return (filesize or 0) / _LOW_BITRATE
    return duration_s
