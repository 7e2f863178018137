"""Devices and backends shared by every model stage, with no model library imported:
a job takes a GPU no other job holds (``claim_gpu``), and a backend is one class in a
``Registry``."""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from video_miner.fsutil import safe_name

log = logging.getLogger(__name__)

GPU_LOCK_DIR = Path(os.environ.get("VIDEO_MINER_GPU_LOCK_DIR", Path(tempfile.gettempdir(), "video-miner-gpu-locks")))
_held_gpu_locks: list = []  # open lock files: each lock lasts as long as this process


def claim_gpu(count: int, lock_dir: Path = GPU_LOCK_DIR, timeout_s: float | None = None) -> int:
    """A visible GPU (index 0..count-1) that no other job on this machine holds.

    Snakemake does not assign devices to local jobs: each model job takes the first free
    device here, and waits while all are busy, so concurrent jobs never share a GPU. The
    lock is an flock on a file named after the physical device (its CUDA_VISIBLE_DEVICES
    entry when set, as under SLURM), released by the OS when the job ends, even on SIGKILL.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    names = visible[:count] if len(visible) >= count else [str(i) for i in range(count)]
    started = time.monotonic()
    warned_at = 0.0
    while True:
        for index, name in enumerate(names):
            handle = open(lock_dir / f"gpu-{safe_name(name)}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_gpu_locks.append(handle)
            return index
        waited = time.monotonic() - started
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"all {count} GPUs are held by other jobs (locks in {lock_dir})")
        if waited - warned_at >= 60:
            warned_at = waited
            log.warning("all %d GPUs busy; waiting for one (use --resources gpu=%d to queue in Snakemake)", count, count)
        time.sleep(1)


def resolve_device(spec: str):
    """``auto`` and ``cuda`` take a GPU no other job holds (see claim_gpu); ``cuda:N`` is
    used as given."""
    import torch

    if spec == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if spec in ("auto", "cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("models.device is 'cuda' but no CUDA device is visible to this job")
        return torch.device("cuda", claim_gpu(torch.cuda.device_count()))
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"models.device is {spec!r} but no CUDA device is visible to this job")
    return device


def resolve_dtype(spec: str, device):
    import torch

    if spec == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, spec)


class Registry:
    """Backends of one kind by name: a new backend is one class decorated with
    ``@REGISTRY.register(name)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def add(cls: type) -> type:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._classes[name] = cls
            return cls
        return add

    def names(self) -> tuple[str, ...]:
        return tuple(self._classes)

    def get(self, name: str) -> type:
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self._classes)}")
        return self._classes[name]

    def create(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)
