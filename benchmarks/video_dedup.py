"""Video dedup's grouping job at scale: time and recall on planted copies.

Every video has 8 random 64-bit frame hashes (real pHashes are more alike than random
ones, which makes the multi-index hash tables' buckets fuller: a best case for the
candidate step), a duration and a size. A tenth are copies of other videos: each frame
hash with as many bits flipped as measured between the demo's ``astronaut_reupload`` and
``astronaut_interview`` (re-encoded at crf 30 and downscaled; the flips of the 8 frames
are permuted per copy), the duration within 1%, a smaller size. Recall is the share of
copies whose ``duplicate_of`` is their original.

Usage: python benchmarks/video_dedup.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from video_miner.videodedup import VideoDedupSettings, group_videos

FRAMES = 8


def measured_flips() -> list[int]:
    """Per-frame Hamming distances between the demo's re-upload and its original."""
    from video_miner.probe import probe_video
    from video_miner.synth import make_demo_clip

    with tempfile.TemporaryDirectory() as tmp:
        hashes = []
        for name in ("astronaut_interview", "astronaut_reupload"):
            make_demo_clip(name, Path(tmp, f"{name}.mp4"))
            hashes.append(np.unpackbits(np.frombuffer(probe_video(Path(tmp, f"{name}.mp4"), FRAMES)["phash"], np.uint8)))
    return sorted((hashes[0] != hashes[1]).reshape(FRAMES, 64).sum(axis=1).tolist())


def synthetic(n: int, flips: list[int], seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` videos, the last tenth copies; returns them and each copy's original row."""
    rng = np.random.default_rng(seed)
    n_copies = n // 10
    n_base = n - n_copies
    bits = rng.integers(0, 2, (n_base, FRAMES, 64), dtype=np.uint8)
    originals = rng.choice(n_base, n_copies, replace=False)
    copies = bits[originals].copy()
    for k in range(n_copies):
        for frame, count in enumerate(rng.permutation(flips)):
            copies[k, frame, rng.choice(64, count, replace=False)] ^= 1
    codes = np.packbits(np.concatenate([bits, copies]), axis=2).reshape(n, FRAMES * 8)
    durations = rng.uniform(10, 600, n_base)
    videos = pd.DataFrame({
        "video_id": [f"v{i:07d}" for i in range(n)],
        "width": np.r_[np.full(n_base, 640), np.full(n_copies, 480)],
        "height": np.r_[np.full(n_base, 360), np.full(n_copies, 270)],
        "duration_s": np.r_[durations, durations[originals] * rng.uniform(0.99, 1.01, n_copies)],
        "content_hash": [f"{i:064x}" for i in range(n)],
        "phash": [row.tobytes() for row in codes],
    })
    return videos, originals


def run(n: int, flips: list[int], threads: int = 2) -> dict:
    videos, originals = synthetic(n, flips)
    started = time.perf_counter()
    groups = group_videos(videos, VideoDedupSettings(), threads=threads)
    seconds = time.perf_counter() - started
    n_base = n - len(originals)
    found = groups["duplicate_of"].to_numpy()[n_base:] == videos["video_id"].to_numpy()[originals]
    wrong = int(groups["duplicate_of"].notna().to_numpy()[:n_base].sum())
    return {"n": n, "seconds": seconds, "recall_planted": float(found.mean()), "false_duplicates": wrong,
            "flips": flips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    flips = measured_flips()
    print(f"bits flipped per frame, demo re-upload vs original: {flips}")
    for n in args.sizes:
        r = run(n, flips, args.threads)
        print(f"{n:,} videos: {r['seconds']:.1f} s, recall {r['recall_planted']:.4f}, "
              f"{r['false_duplicates']} false duplicates", flush=True)


if __name__ == "__main__":
    main()
