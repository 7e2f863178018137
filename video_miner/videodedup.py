"""Near-duplicate videos across the run: re-encoded, rescaled and re-muxed copies.

Each video has ``frames`` 64-bit perceptual hashes at fixed fractions of its duration
(computed by the probe) and a content hash of its video stream. Exact copies share the
content hash. Near copies are found in two steps: per hash position a FAISS multi-index
hash table (``IndexBinaryMultiHash``: 3 tables of 21 bits, one flipped bit probed) gives
every pair that agrees at that position within ``max_distance`` (certainly when they differ
by at most 5 bits there); a pair found at any position is confirmed when the median Hamming
distance over all positions is at most ``max_distance`` and the durations differ by at most
``duration_tolerance``. Trimmed copies are out of scope: their hash frames fall elsewhere.

Groups are the connected pieces of the confirmed pairs. Each group's canonical video is
the one with the most pixels, then the longest, then the smallest id: never listing order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.tables.video import REJECTED

_DEFAULTS = section_defaults("video_dedup")
# The candidate index: 3 disjoint 21-bit keys of a 64-bit hash, each probed with up to one
# flipped bit. A position differing by <= 5 bits always shares a key within one flip;
# on 2 cores a million hashes take ~10 s per position (BENCHMARKS.md).
_TABLES, _KEY_BITS, _FLIPS = 3, 21, 1


@dataclass(frozen=True)
class VideoDedupSettings:
    frames: int = _DEFAULTS["frames"]
    max_distance: int = _DEFAULTS["max_distance"]
    duration_tolerance: float = _DEFAULTS["duration_tolerance"]
    keep_duplicates: bool = _DEFAULTS["keep_duplicates"]

    @classmethod
    def from_config(cls, section: dict) -> "VideoDedupSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


def unpack_hashes(values, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``phash`` values (bytes, ``frames`` x 8 each, or None) as an (n, frames, 8) uint8
    array and a mask of the videos that have them."""
    have = np.array([isinstance(v, (bytes, bytearray)) and len(v) == frames * 8 for v in values], bool)
    codes = np.zeros((len(values), frames, 8), np.uint8)
    if have.any():
        codes[have] = np.frombuffer(b"".join(v for v, h in zip(values, have) if h), np.uint8).reshape(-1, frames, 8)
    return codes, have


_POPCOUNT = np.array([i.bit_count() for i in range(256)], np.uint8)


def median_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Median over positions of the Hamming distances between hash sets (..., frames, 8)."""
    return np.median(_POPCOUNT[a ^ b].sum(axis=-1, dtype=np.int32), axis=-1)


def candidate_pairs(codes: np.ndarray, max_distance: int, threads: int | None = None) -> np.ndarray:
    """Pairs (i < j) of rows of ``codes`` (n, frames, 8) that agree within ``max_distance``
    bits at some position, as an (m, 2) int64 array."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    n, frames, _ = codes.shape
    found = []
    for position in range(frames):
        x = np.ascontiguousarray(codes[:, position])
        index = faiss.IndexBinaryMultiHash(64, _TABLES, _KEY_BITS)
        index.nflip = _FLIPS
        index.add(x)
        lims, _, ids = index.range_search(x, max_distance + 1)  # binary radius is exclusive
        queries = np.repeat(np.arange(n, dtype=np.int64), np.diff(lims).astype(np.int64))
        keep = queries < ids
        found.append(queries[keep] * n + ids[keep])
    if not found:
        return np.zeros((0, 2), np.int64)
    keys = np.unique(np.concatenate(found))
    return np.stack([keys // n, keys % n], axis=1)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def group_videos(videos: pd.DataFrame, settings: VideoDedupSettings, threads: int | None = None) -> pd.DataFrame:
    """``videos``: ``video_id``, ``width``, ``height``, ``duration_s``, ``content_hash``,
    ``phash``. One row per video in id order: ``duplicate_of`` (its group's canonical
    video, None for a canonical or unique one), ``distance`` (median Hamming distance to the
    canonical, 0 for an exact copy) and ``match`` (``exact`` or ``near``)."""
    videos = videos.sort_values("video_id", kind="stable").reset_index(drop=True)
    n = len(videos)
    out = pd.DataFrame({"video_id": videos["video_id"], "duplicate_of": None, "distance": np.nan, "match": None})
    if n == 0:
        return out
    codes, have = unpack_hashes(videos["phash"].tolist(), settings.frames)
    durations = pd.to_numeric(videos["duration_s"], errors="coerce").to_numpy(float)
    groups = _UnionFind(n)
    content = videos["content_hash"].fillna("").to_numpy()
    for members in pd.Series(np.arange(n)).groupby(content).groups.values():
        members = list(members)
        if content[members[0]]:
            for other in members[1:]:
                groups.union(members[0], other)
    rows = np.flatnonzero(have)
    if len(rows) > 1:
        pairs = rows[candidate_pairs(codes[rows], settings.max_distance, threads)]
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            close = median_distances(codes[i], codes[j]) <= settings.max_distance
            longer = np.fmax(durations[i], durations[j])
            same_length = np.abs(durations[i] - durations[j]) <= settings.duration_tolerance * longer
            for a, b in pairs[close & same_length]:
                groups.union(int(a), int(b))
    roots = np.array([groups.find(i) for i in range(n)])
    pixels = (pd.to_numeric(videos["width"], errors="coerce").fillna(0)
              * pd.to_numeric(videos["height"], errors="coerce").fillna(0)).to_numpy()
    # The canonical copy: most pixels, then longest, then the smallest id (rows are in id order).
    order = np.lexsort((np.arange(n), -np.nan_to_num(durations, nan=-1.0), -pixels))
    first = np.full(n, -1)
    for row in order[::-1]:  # the best row of each group is written last
        first[roots[row]] = row
    best = first[roots]
    duplicate = np.flatnonzero(best != np.arange(n))
    if len(duplicate) == 0:
        return out
    canonical = best[duplicate]
    exact = (content[duplicate] != "") & (content[duplicate] == content[canonical])
    both = have[duplicate] & have[canonical]
    distance = np.where(both, median_distances(codes[duplicate], codes[canonical]), np.nan)
    out.loc[duplicate, "duplicate_of"] = videos["video_id"].to_numpy()[canonical]
    out.loc[duplicate, "distance"] = np.where(exact, 0.0, distance)
    out.loc[duplicate, "match"] = np.where(exact, "exact", "near")
    return out


def duplicates_json(groups: pd.DataFrame) -> dict:
    """``duplicates.json``: canonical video id -> its duplicates with their distances."""
    result: dict[str, list[dict]] = {}
    for row in groups.dropna(subset=["duplicate_of"]).itertuples(index=False):
        result.setdefault(row.duplicate_of, []).append({
            "video_id": row.video_id, "match": row.match,
            "distance": None if pd.isna(row.distance) else float(row.distance)})
    return dict(sorted(result.items()))


VIDEO_DEDUP_FIELDS = (
    pa.field("duplicate_of", pa.string()),  # the canonical copy; null for canonical and unique videos
    pa.field("distance", pa.float64()),  # median Hamming distance of the hash frames to it
    pa.field("match", pa.string()),  # exact (same video stream) or near
    REJECTED,
)


def dedup_videos(probe_tables: list[str], settings: VideoDedupSettings,
                 threads: int | None = None) -> tuple[pa.Table, dict, dict]:
    """The run's video_dedup table (every video the probe kept; a duplicate is ``kept:
    false``, ``duplicate of <id>``, unless ``keep_duplicates``), ``duplicates.json`` and
    the job's record."""
    from video_miner.tables.video import VIDEO

    videos = VIDEO.read_kept(probe_tables, columns=["width", "height", "duration_s", "content_hash", "phash"])
    groups = group_videos(videos, settings, threads)
    duplicate = groups["duplicate_of"].notna()
    groups["kept"] = settings.keep_duplicates | ~duplicate
    groups["reason"] = np.where(groups["kept"], "", "duplicate of " + groups["duplicate_of"].fillna(""))
    groups["rejected"] = ~groups["kept"]
    record = {"videos": len(groups), "duplicates": int(duplicate.sum()),
              "groups": int(groups.loc[duplicate, "duplicate_of"].nunique()), "settings": asdict(settings)}
    return VIDEO.table(groups, *VIDEO_DEDUP_FIELDS), duplicates_json(groups), record
