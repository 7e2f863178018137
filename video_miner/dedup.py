"""Near-duplicate removal with FAISS inner-product search on L2-normalised embeddings.

Per video, greedy temporal dedup keeps the first frame of every run of frames that look
alike. Across videos (and across scenes of one video), greedy global dedup walks the
frames in a canonical order (video id, frame index) and keeps a frame unless an earlier
kept frame is at least ``threshold`` similar; so the kept set depends on neither shard
order nor parallelism. Exact search up to ``exact_max`` frames, an IVF index trained on
a fixed sample above it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.fsutil import atomic_dir, atomic_path
from video_miner.shardjob import Lazy, VideoCache, cached_frame_results
from video_miner.tables.frame import FRAME, FRAME_COLUMNS, UNREADABLE

log = logging.getLogger(__name__)


@dataclass
class DedupResult:
    kept: np.ndarray  # bool
    duplicate_of: np.ndarray  # int64 row of the kept frame it repeats, -1 when kept or unreadable
    similarity: np.ndarray  # float32 similarity to that frame, NaN when kept


def temporal_dedup(embeddings: np.ndarray, threshold: float) -> DedupResult:
    """Frames in time order; a frame is kept when it differs (cosine < threshold) from
    the last kept frame. Rows with NaN (unreadable frames) are dropped."""
    n = len(embeddings)
    kept = np.zeros(n, bool)
    duplicate_of = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan, np.float32)
    representative = -1
    for i in range(n):
        if np.isnan(embeddings[i]).any():
            continue
        if representative >= 0:
            sim = float(embeddings[i] @ embeddings[representative])
            if sim >= threshold:
                duplicate_of[i], similarity[i] = representative, sim
                continue
        kept[i] = True
        representative = i
    return DedupResult(kept, duplicate_of, similarity)


def flat_index(embeddings: np.ndarray, ids: np.ndarray | None = None) -> faiss.Index:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(embeddings.shape[1]))
    ids = np.arange(len(embeddings)) if ids is None else ids
    if len(embeddings):
        index.add_with_ids(np.ascontiguousarray(embeddings, dtype=np.float32), ids.astype(np.int64))
    return index


_DEDUP_DEFAULTS = section_defaults("dedup")


@dataclass(frozen=True)
class SearchSettings:
    exact_max: int = _DEDUP_DEFAULTS["exact_search_max"]
    nlist: int | None = _DEDUP_DEFAULTS["ivf_nlist"]  # None: about 4 * sqrt(n)
    nprobe: int = _DEDUP_DEFAULTS["ivf_nprobe"]  # 1M frames: recall 0.9999 in 615 s on 2 cores (BENCHMARKS.md)
    train_size: int = 100_000
    chunk: int = 8192
    seed: int = 0
    kmeans_iterations: int = 10  # cells only route the search; 10 iterations place them well enough


def search_index(embeddings: np.ndarray, settings: SearchSettings) -> faiss.Index:
    """Exact inner-product index, or IVF (trained on a deterministic sample) when large."""
    n, dim = embeddings.shape
    if n <= settings.exact_max:
        return flat_index(embeddings)
    nlist = settings.nlist or int(4 * math.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(settings.seed).choice(n, size=min(n, max(settings.train_size, 39 * nlist)), replace=False)
    index.cp.seed = settings.seed
    index.cp.niter = settings.kmeans_iterations
    index.train(embeddings[np.sort(sample)])
    index.add(embeddings)
    index.nprobe = settings.nprobe
    return index


def global_dedup(embeddings: np.ndarray, threshold: float, settings: SearchSettings = SearchSettings()
                 ) -> tuple[DedupResult, faiss.Index]:
    """Greedy dedup over rows already in canonical order (see module docstring)."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    kept = np.zeros(n, bool)
    duplicate_of = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan, np.float32)
    started = time.perf_counter()
    index = search_index(embeddings, settings)
    log.info("%s over %d frames built in %.1fs", type(index).__name__, n, time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, n, settings.chunk):
        stop = min(n, start + settings.chunk)
        limits, sims, rows = index.range_search(embeddings[start:stop], threshold)
        for q in range(stop - start):
            i = start + q
            neighbours, neighbour_sims = rows[limits[q] : limits[q + 1]], sims[limits[q] : limits[q + 1]]
            earlier_kept = (neighbours < i) & kept[np.minimum(neighbours, n - 1)]
            if earlier_kept.any():
                best = np.argmax(np.where(earlier_kept, neighbour_sims, -np.inf))
                duplicate_of[i], similarity[i] = neighbours[best], neighbour_sims[best]
            else:
                kept[i] = True
    log.info("searched and decided %d frames in %.1fs", n, time.perf_counter() - started)
    return DedupResult(kept, duplicate_of, similarity), index


def write_index(path: str | os.PathLike, index: faiss.Index) -> None:
    with atomic_path(path, suffix=".faiss") as tmp:
        faiss.write_index(index, str(tmp))


EMBEDDINGS_FILE = "embeddings.npy"


def threshold_for(settings: dict) -> float:
    """The cosine threshold: as configured for model embeddings, from the Hamming
    distance for perceptual hashes (+-1/8 vectors: cos = 1 - 2 * distance / 64)."""
    if settings["backend"] == "phash":
        return 1.0 - 2.0 * settings["phash_max_distance"] / 64.0
    return settings["threshold"]


def _duplicate_reason(frame_index: int, similarity: float) -> str:
    return f"near-duplicate of frame {frame_index} (similarity {similarity:.3f})"


EMBED_FIELDS = (pa.field("duplicate_of", pa.int64()), pa.field("similarity", pa.float32()))


def embed_shard(frames: pd.DataFrame, embedder_factory, threshold: float, out_dir: str | os.PathLike,
                cache: VideoCache, store_dtype: str = "float16") -> tuple[pd.DataFrame, dict]:
    """Embed a shard's frames (``frames``: the kept rows of the stage before; the model
    is loaded once, only for videos not embedded in an earlier run of this job), dedup
    each video in time, and write the shard folder: embeddings.npy (rows aligned with the
    returned table) and one <video>.faiss index per video with frame numbers as ids."""
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    embedder = Lazy(embedder_factory)
    per_video = cached_frame_results(cache, frames, lambda part: embedder().process(part["path"].tolist()))
    embeddings = np.concatenate(list(per_video.values())) if per_video else np.zeros((0, 1), np.float32)
    n = len(frames)
    kept = np.zeros(n, bool)
    duplicate_of = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan, np.float32)
    reason = np.full(n, "", object)
    frame_numbers = frames["frame_index"].to_numpy()
    with atomic_dir(out_dir) as tmp:
        for video_id, rows in frames.groupby("video_id", sort=True).indices.items():
            result = temporal_dedup(embeddings[rows], threshold)
            kept[rows] = result.kept
            duplicate_of[rows] = np.where(result.duplicate_of >= 0, frame_numbers[rows][result.duplicate_of], -1)
            similarity[rows] = result.similarity
            readable = ~np.isnan(embeddings[rows]).any(axis=1)
            for row, ok in zip(rows, readable):
                if not ok:
                    reason[row] = UNREADABLE
                elif not kept[row]:
                    reason[row] = _duplicate_reason(int(duplicate_of[row]), float(similarity[row]))
            faiss.write_index(flat_index(embeddings[rows[readable]], frame_numbers[rows[readable]]),
                              str(Path(tmp, f"{video_id}.faiss")))
        np.save(Path(tmp, EMBEDDINGS_FILE), np.nan_to_num(embeddings).astype(store_dtype))
    table = frames[FRAME_COLUMNS].assign(
        kept=kept, reason=reason, duplicate_of=pd.array(np.where(duplicate_of >= 0, duplicate_of, None), dtype="Int64"),
        similarity=similarity)
    return table, {"frames": n, "kept": int(kept.sum()), "videos": int(frames["video_id"].nunique())}


def write_embed_table(path: str | os.PathLike, table: pd.DataFrame, record: dict) -> None:
    FRAME.write(path, FRAME.table(table, *EMBED_FIELDS), record)


# The cross-video table names each duplicate's original by frame id, and its shard, so a
# per-shard stage after it reads its own rows.
UNIQUE_FIELDS = (pa.field("shard", pa.string(), nullable=False), pa.field("duplicate_of", pa.string()),
                 pa.field("similarity", pa.float32()))


def cross_video(embed_tables: list[str], embed_dirs: list[str], shards: list[str], threshold: float,
                settings: SearchSettings) -> tuple[pa.Table, faiss.Index]:
    """Global dedup of every frame the per-video step kept, over all shards."""
    tables, vectors = [], []
    for table_path, folder, shard in zip(embed_tables, embed_dirs, shards, strict=True):
        table = FRAME.read(table_path)
        keep = table["kept"].to_numpy(bool)
        if not keep.any():  # a shard of failed or filtered-out videos: nothing to compare
            continue
        tables.append(table[keep].assign(shard=shard))
        vectors.append(np.load(Path(folder, EMBEDDINGS_FILE))[keep].astype(np.float32))
    columns = [*FRAME_COLUMNS, "shard"]
    frames = pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)
    dim = max((v.shape[1] for v in vectors), default=1)
    embeddings = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    order = np.lexsort((frames["frame_index"].to_numpy(), frames["video_id"].to_numpy())) if len(frames) else []
    frames, embeddings = frames.iloc[order].reset_index(drop=True), embeddings[order]
    # Stored as float16: restore unit length before comparing with the threshold.
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    result, index = global_dedup(embeddings, threshold, settings)
    ids = frames["frame_id"].tolist()
    frames = frames.assign(
        kept=result.kept,
        reason=["" if j < 0 else f"near-duplicate of {ids[j]} (similarity {s:.3f})"
                for j, s in zip(result.duplicate_of, result.similarity)],
        duplicate_of=[ids[j] if j >= 0 else None for j in result.duplicate_of],
        similarity=[None if np.isnan(s) else float(s) for s in result.similarity],
    )
    return FRAME.table(frames, *UNIQUE_FIELDS), index
