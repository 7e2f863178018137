"""What every per-shard job shares: a per-video cache that survives a killed job, videos
run in parallel, and the job's declared files linked from the cache at the end.

Snakemake deletes an incomplete job's declared outputs before running it again, so the
per-video progress lives outside them, in ``results/.cache/<stage>/<shard>/``: one
record per finished video, written atomically and tagged with a fingerprint of the
settings that made it. A rerun (after a kill, or because the shard gained a video)
reuses every record whose fingerprint matches and redoes only the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from video_miner.fsutil import atomic_path, write_json_atomic
from video_miner.logs import Progress
from video_miner.workers import Isolation, isolated_map

log = logging.getLogger(__name__)


def fingerprint(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class VideoCache:
    """Per-video records of one shard job. ``load`` gives a record only when it was made
    with the same settings; side files of a video (a download, frames, embeddings) live
    under ``path(video_id)``."""

    def __init__(self, root: str | os.PathLike, settings: Any):
        self.root = Path(root)
        self.key = fingerprint(settings)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, video_id: str) -> Path:
        return self.root / video_id

    def _record_path(self, video_id: str) -> Path:
        return self.root / f"{video_id}.json"

    def _read(self, path: Path) -> dict | None:
        """The record at ``path`` if it was made with this cache's settings."""
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return stored["record"] if stored.get("key") == self.key else None

    def load(self, video_id: str) -> dict | None:
        return self._read(self._record_path(video_id))

    def save(self, video_id: str, record: dict) -> None:
        write_json_atomic(self._record_path(video_id), {"key": self.key, "record": record})

    def nearby(self, video_id: str, reach: int = 2) -> Iterator[dict]:
        """Records of this video, made with the same settings, in the caches of the
        shards numbered up to ``reach`` before or after this one (the same list): where a
        video lands when lines are inserted or removed above it."""
        prefix, _, number = self.root.name.rpartition("-")
        if not number.isdigit():
            return
        for other in range(max(0, int(number) - reach), int(number) + reach + 1):
            path = self.root.parent / f"{prefix}-{other:0{len(number)}d}" / f"{video_id}.json"
            if path.parent != self.root and (record := self._read(path)) is not None:
                yield record

    def forget(self, video_id: str) -> None:
        self._record_path(video_id).unlink(missing_ok=True)
        side = self.path(video_id)
        if side.is_dir():
            shutil.rmtree(side, ignore_errors=True)
        for extra in self.root.glob(f"{video_id}.*"):
            if extra.suffix != ".json":
                extra.unlink(missing_ok=True)

    def prune(self, keep: Iterable[str]) -> None:
        """Drop the records of videos no longer in the shard."""
        keep = set(keep)
        for record in self.root.glob("*.json"):
            if record.stem not in keep:
                self.forget(record.stem)


def cached_map(cache: VideoCache, video_ids: Sequence[str], work: Callable[[str], dict], workers: int = 1,
               what: str = "videos", reusable: Callable[[dict], bool] | None = None,
               failed: Callable[[str, str], dict] | None = None,
               isolation: Isolation | None = None) -> dict[str, dict]:
    """``work(video_id) -> record`` for each video not in the cache (or whose cached
    record is not ``reusable``), ``workers`` at once; each record is saved as soon as it
    is made. A video whose work raises costs only itself: ``failed(video_id, reason)``
    makes its record, which is not cached (a rerun tries it again). With ``isolation``
    the work runs in worker processes under its limits (time, memory, crashes; see
    :mod:`video_miner.workers`), else on threads. Returns every video's record, in
    ``video_ids`` order."""
    done = {v: r for v in video_ids
            if (r := cache.load(v)) is not None and (reusable is None or reusable(r))}
    todo = [v for v in video_ids if v not in done]
    if done:
        log.info("%d of %d %s already done in an earlier run", len(done), len(video_ids), what)
    progress = Progress(what, len(todo))

    def run(video_id: str) -> tuple[str, dict]:
        try:
            record = work(video_id)
            cache.save(video_id, record)
        except Exception as exc:  # noqa: BLE001 - any error of one video is that video's failure
            if failed is None:
                raise
            log.exception("%s failed", video_id)
            record = failed(video_id, f"{type(exc).__name__}: {exc}")
        progress.update()
        return video_id, record

    if isolation is not None:
        if failed is None:
            raise ValueError("isolated work needs a `failed` record maker")
        for video_id, record, reason in isolated_map(todo, work, workers, isolation):
            if reason is None:
                cache.save(video_id, record)
            else:
                record = failed(video_id, reason)
            done[video_id] = record
            progress.update()
    elif workers <= 1 or len(todo) <= 1:
        done.update(run(v) for v in todo)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done.update(pool.map(run, todo))
    return {v: done[v] for v in video_ids}


def link_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Hard-link ``source`` to ``target`` (a copy across filesystems)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def file_identity(path: str | os.PathLike) -> list | None:
    """Size and modification time: a file made again (new settings upstream) differs,
    a hard link of the same file does not."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def frame_identity(frames: pd.DataFrame, columns: Sequence[str] = ()) -> list:
    """What a cached per-video result was computed from: each frame's number and file,
    and the values of ``columns`` (a stage that works on the boxes: the boxes)."""
    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple, np.ndarray)) else \
            value.item() if isinstance(value, np.generic) else value

    extra = [[plain(v) for v in frames[c]] for c in columns]
    return [[int(i), file_identity(p), *(e[n] for e in extra)]
            for n, (i, p) in enumerate(zip(frames["frame_index"], frames["path"]))]


def cached_frame_results(cache: VideoCache, frames: pd.DataFrame, compute: Callable[[pd.DataFrame], Any],
                         chunk_frames: int = 256, complete: Callable[[list], bool] | None = None,
                         identity_columns: Sequence[str] = ()) -> dict[str, Any]:
    """Per-video results of a frame model over a shard's ``frames`` (sorted by video),
    resumable per video. ``compute(frames)`` gives one result per row: an array (stored
    as ``<video>.npy``) or a list of JSON values. Videos with a cached record made from
    the same frame files are skipped; the rest run in chunks of whole videos of about
    ``chunk_frames`` frames, so a model's batches stay full, and each chunk's videos are
    saved as soon as it is done. A video whose list of results is not ``complete`` (a
    request failed) is returned but not saved, so the next run computes it again.
    ``identity_columns``: inputs besides the frame files a result depends on (the boxes)."""
    video_ids = list(dict.fromkeys(frames["video_id"]))
    cache.prune(video_ids)
    rows_of = frames.groupby("video_id", sort=False).indices
    identity = {v: frame_identity(frames.iloc[rows_of[v]], identity_columns) for v in video_ids}
    results: dict[str, Any] = {}
    for video_id in video_ids:
        record = cache.load(video_id)
        if record is not None and record["frames"] == identity[video_id]:
            results[video_id] = np.load(cache.root / f"{video_id}.npy") if record["array"] else record["items"]
    todo = [v for v in video_ids if v not in results]
    if len(results):
        log.info("%d of %d videos already done in an earlier run", len(results), len(video_ids))
    progress = Progress("frames", sum(len(rows_of[v]) for v in todo))
    chunk: list[str] = []

    def run_chunk() -> None:
        part = frames.iloc[np.concatenate([rows_of[v] for v in chunk])].reset_index(drop=True)
        out = compute(part)
        start = 0
        for video_id in chunk:
            n = len(rows_of[video_id])
            piece = out[start : start + n]
            start += n
            if isinstance(piece, np.ndarray):
                with atomic_path(cache.root / f"{video_id}.npy", suffix=".npy") as tmp:
                    np.save(tmp, piece)
                cache.save(video_id, {"frames": identity[video_id], "array": True})
            else:
                piece = list(piece)
                if complete is None or complete(piece):
                    cache.save(video_id, {"frames": identity[video_id], "array": False, "items": piece})
            results[video_id] = piece
        progress.update(len(part))
        chunk.clear()

    for video_id in todo:
        chunk.append(video_id)
        if sum(len(rows_of[v]) for v in chunk) >= chunk_frames:
            run_chunk()
    if chunk:
        run_chunk()
    return {v: results[v] for v in video_ids}


class Lazy:
    """Makes its object (loads a model) on first use only, so a shard whose videos are
    all cached or empty never loads one."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._value = None

    def __call__(self) -> Any:
        if self._value is None:
            self._value = self._factory()
        return self._value
