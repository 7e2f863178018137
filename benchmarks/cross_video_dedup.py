"""Cross-video dedup at scale: time and duplicate-pair recall on synthetic embeddings.

Embeddings are 768-d, clustered like real image embeddings (many scenes, frames of a
scene alike but not duplicates), plus known duplicate pairs (cosine about 0.96). Recall
is the share of known pairs found (the later frame marked as a duplicate); at sizes where
exact search is affordable the IVF result is also compared with it.

Usage: python benchmarks/cross_video_dedup.py [--sizes 100000 1000000] [--exact-max 200000]
"""

from __future__ import annotations

import argparse
import logging
import time

import faiss
import numpy as np

from video_miner.dedup import SearchSettings, global_dedup

DIM = 768


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors in canonical order; returns them and, for every row that is a
    planted duplicate, the row it duplicates (else -1)."""
    rng = np.random.default_rng(seed)
    n_pairs = n // 10
    n_base = n - n_pairs
    centres = rng.standard_normal((max(1, n_base // 100), DIM), dtype=np.float32)
    base = centres[rng.integers(0, len(centres), n_base)] + 1.2 * rng.standard_normal((n_base, DIM), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    originals = rng.choice(n_base, n_pairs, replace=False)
    copies = base[originals] + 0.009 * rng.standard_normal((n_pairs, DIM), dtype=np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    vectors = np.concatenate([base, copies])
    truth = np.full(n, -1, np.int64)
    truth[n_base:] = originals
    return vectors, truth


def run(n: int, exact_max: int, threshold: float, nprobe: int = 16) -> dict:
    vectors, truth = synthetic(n)
    planted = truth >= 0
    started = time.perf_counter()
    result, index = global_dedup(vectors, threshold, SearchSettings(exact_max=exact_max, nprobe=nprobe))
    seconds = time.perf_counter() - started
    found = (~result.kept[planted]) & (result.duplicate_of[planted] == truth[planted])
    row = {"n": n, "index": type(index).__name__, "nprobe": nprobe, "seconds": seconds, "recall_planted": found.mean(),
           "kept": int(result.kept.sum()), "expected_kept": int((~planted).sum())}
    if n <= exact_max:
        row["recall_vs_exact"] = 1.0
    elif n <= 200_000:
        exact, _ = global_dedup(vectors, threshold, SearchSettings(exact_max=n))
        exact_dups = ~exact.kept
        row["recall_vs_exact"] = float(((~result.kept) & exact_dups).sum() / max(1, exact_dups.sum()))
    return row


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--exact-max", type=int, default=200_000)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--nprobe", type=int, default=16)
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    print("| frames | index | seconds | recall (planted pairs) | recall vs exact | kept / expected |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in args.sizes:
        r = run(n, args.exact_max, args.threshold, args.nprobe)
        vs_exact = f"{r['recall_vs_exact']:.4f}" if "recall_vs_exact" in r else "n/a (exact too slow)"
        print(f"| {n} | {r['index']} | {r['seconds']:.1f} | {r['recall_planted']:.4f} | {vs_exact} | "
              f"{r['kept']} / {r['expected_kept']} |", flush=True)


if __name__ == "__main__":
    main()
