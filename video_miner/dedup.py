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

from video_miner.filtering import FRAME_COLUMNS, read_manifests
from video_miner.fsutil import atomic_dir, atomic_path
from video_miner.ids import frame_id

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


@dataclass(frozen=True)
class SearchSettings:
    exact_max: int = 200_000
    nlist: int | None = None  # None: about 4 * sqrt(n)
    nprobe: int = 16  # 1M frames: recall 0.9999 in 615 s on 2 cores (BENCHMARKS.md)
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


FRAMES_FILE = "frames.parquet"
EMBEDDINGS_FILE = "embeddings.npy"


def threshold_for(settings: dict) -> float:
    """The cosine threshold: as configured for model embeddings, from the Hamming
    distance for perceptual hashes (+-1/8 vectors: cos = 1 - 2 * distance / 64)."""
    if settings["backend"] == "phash":
        return 1.0 - 2.0 * settings["phash_max_distance"] / 64.0
    return settings["threshold"]


def shard_frames(filtered: str | None, manifests: list[str]) -> pd.DataFrame:
    """The frames to embed: those that passed the filter, or all extracted frames."""
    if filtered:
        table = pd.read_parquet(filtered, columns=[*FRAME_COLUMNS, "passed"])
        return table[table["passed"]].drop(columns="passed").reset_index(drop=True)
    return read_manifests(manifests)


def embed_shard(frames: pd.DataFrame, embedder_factory, threshold: float, out_dir: str | os.PathLike,
                store_dtype: str = "float16") -> dict:
    """Embed a shard's frames (model loaded once, only if there are frames), dedup each
    video in time, and write the shard folder: frames.parquet, embeddings.npy (rows
    aligned) and one <video>.faiss index per video with frame numbers as ids."""
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    embeddings = embedder_factory().process(frames["path"].tolist()) if len(frames) else np.zeros((0, 1), np.float32)
    kept = np.zeros(len(frames), bool)
    duplicate_of = np.full(len(frames), -1, np.int64)
    similarity = np.full(len(frames), np.nan, np.float32)
    with atomic_dir(out_dir) as tmp:
        for video_id, rows in frames.groupby("video_id", sort=True).indices.items():
            result = temporal_dedup(embeddings[rows], threshold)
            kept[rows] = result.kept
            duplicate_of[rows] = np.where(result.duplicate_of >= 0,
                                          frames["frame_index"].to_numpy()[rows][result.duplicate_of], -1)
            similarity[rows] = result.similarity
            readable = rows[~np.isnan(embeddings[rows]).any(axis=1)]
            faiss.write_index(flat_index(embeddings[readable], frames["frame_index"].to_numpy()[readable]),
                              str(Path(tmp, f"{video_id}.faiss")))
        table = frames[["video_id", "frame_index", "timestamp_s", "path"]].assign(
            kept=kept, duplicate_of=pd.array(np.where(duplicate_of >= 0, duplicate_of, None), dtype="Int64"),
            similarity=similarity)
        table.to_parquet(Path(tmp, FRAMES_FILE), index=False)
        np.save(Path(tmp, EMBEDDINGS_FILE), np.nan_to_num(embeddings).astype(store_dtype))
    return {"frames": len(frames), "kept": int(kept.sum()), "videos": int(frames["video_id"].nunique())}


UNIQUE_SCHEMA = pa.schema([
    pa.field("frame_id", pa.string(), nullable=False),
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("kept", pa.bool_(), nullable=False),
    pa.field("duplicate_of", pa.string()),
    pa.field("similarity", pa.float32()),
])


def cross_video(shard_dirs: list[str], threshold: float, settings: SearchSettings) -> tuple[pa.Table, faiss.Index]:
    """Global dedup of every frame the per-video step kept, over all shards."""
    tables, vectors = [], []
    for shard in shard_dirs:
        table = pd.read_parquet(Path(shard, FRAMES_FILE))
        keep = table["kept"].to_numpy()
        if not keep.any():  # a shard of failed or filtered-out videos: nothing to compare
            continue
        tables.append(table[keep])
        vectors.append(np.load(Path(shard, EMBEDDINGS_FILE))[keep].astype(np.float32))
    frames = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=UNIQUE_SCHEMA.names)
    dim = max((v.shape[1] for v in vectors), default=1)
    embeddings = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    order = np.lexsort((frames["frame_index"].to_numpy(), frames["video_id"].to_numpy())) if len(frames) else []
    frames, embeddings = frames.iloc[order].reset_index(drop=True), embeddings[order]
    # Stored as float16: restore unit length before comparing with the threshold.
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    result, index = global_dedup(embeddings, threshold, settings)
    ids = [frame_id(v, i) for v, i in zip(frames["video_id"], frames["frame_index"])]
    table = pa.table({
        "frame_id": ids,
        "video_id": frames["video_id"].astype(str).tolist(),
        "frame_index": frames["frame_index"].astype("int64").tolist(),
        "timestamp_s": frames["timestamp_s"].astype("float64").tolist(),
        "path": frames["path"].astype(str).tolist(),
        "kept": result.kept.tolist(),
        "duplicate_of": [ids[j] if j >= 0 else None for j in result.duplicate_of],
        "similarity": [None if np.isnan(s) else float(s) for s in result.similarity],
    }, schema=UNIQUE_SCHEMA)
    return table, index
