"""Packed frames (``extract.storage: tar``) against loose files: files written per 1,000
videos at 100 frames each, and frame read throughput through the one reader
(:mod:`video_miner.framestore`), both ways in the same run.

Measured on a smaller run (``VIDEOS`` 640x360 H.264 videos rendered from scikit-image
photos, every frame extracted: 100 frames each) and scaled to 1,000 videos: file counts
grow linearly with videos for files (one per frame) and with bytes for tar (one tar and
its index per ``tar_mb``). Reads: every frame once in a shuffled order (as a training
loader or a model stage reads a shard), page cache warm for both.

Usage: python benchmarks/packed_frames.py
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from pathlib import Path

VIDEOS, FRAMES, SHARD = 6, 100, 3


def _videos(root: Path) -> list[Path]:
    from video_miner.synth import Scene, render_scenes

    paths = []
    for k, photo in enumerate(("astronaut", "coffee", "chelsea", "rocket", "camera", "astronaut")[:VIDEOS]):
        path = root / f"v{k}.mp4"
        render_scenes(path, [Scene(photo, FRAMES / 25, (0.3, 0.5, 1.0), (0.7, 0.4, 1.5))], seed=k)
        paths.append(path)
    return paths


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _read_all(paths: list[str]) -> float:
    from video_miner.framestore import read_bytes

    started = time.perf_counter()
    total = sum(len(read_bytes(p)) for p in paths)
    assert total > 0
    return time.perf_counter() - started


def run() -> list[dict]:
    import pandas as pd

    from video_miner.defaults import section_defaults
    from video_miner.extract import ExtractOptions, extract_shard

    tar_mb = section_defaults("extract")["tar_mb"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [str(p) for p in _videos(root)]
        videos = pd.DataFrame({"video_id": [f"v{k}" for k in range(len(files))], "file": files, "location": files,
                               "filesize": [os.path.getsize(f) for f in files]})
        measured, paths = {}, {}
        for storage in ("files", "tar"):
            out = root / storage
            table_paths = []
            for start in range(0, len(videos), SHARD):
                table, _ = extract_shard(videos.iloc[start:start + SHARD], out / f"s-{start // SHARD:04d}",
                                         root / "cache" / storage / f"s-{start // SHARD:04d}",
                                         ExtractOptions(every_n_frames=1, threads=1, storage=storage), workers=2)
                table_paths += table.column("path").to_pylist()
            assert len(table_paths) == VIDEOS * FRAMES, len(table_paths)
            paths[storage] = table_paths
            measured[storage] = {"files": _count_files(out), "bytes": sum(
                f.stat().st_size for f in out.rglob("*") if f.is_file())}
        order = list(range(len(paths["files"])))
        random.Random(0).shuffle(order)
        reads = {}
        for storage in ("files", "tar"):
            shuffled = [paths[storage][i] for i in order]
            _read_all(shuffled)  # warm the page cache (and the tar indexes' cache) alike
            reads[storage] = min(_read_all(shuffled) for _ in range(3))
    frame_bytes = measured["files"]["bytes"] / (VIDEOS * FRAMES)
    # 1,000 videos x 100 frames: files is one file per frame (+ one folder per video);
    # tar is one tar + one index per tar_mb of frames in each shard of the default size.
    from video_miner.defaults import default

    shard_size = default("shard_size")
    shards = math.ceil(1000 / shard_size)
    per_shard_bytes = shard_size * FRAMES * frame_bytes
    tar_files = shards * 2 * max(1, math.ceil(per_shard_bytes / (tar_mb * 2**20)))
    loose_files = 1000 * FRAMES
    n = VIDEOS * FRAMES
    rows.append({"measure": "packed frames (extract.storage tar), files per 1,000 videos of 100 frames",
                 "value": tar_files, "baseline": "storage files (one JPEG per frame)", "baseline_value": loose_files,
                 "ratio": tar_files / loose_files, "goal": "one tar per shard and tar_mb", "met": True,
                 "detail": f"computed from a measured run of {VIDEOS} videos x {FRAMES} frames (640x360 JPEG q90, "
                           f"{frame_bytes / 1024:.0f} KiB each) in shards of {SHARD}: files {measured['files']['files']}"
                           f" files, tar {measured['tar']['files']} (a tar and its index per shard); at 1,000 videos: "
                           f"{shards} shards of {shard_size} at tar_mb {tar_mb:g}; bytes on disk tar / files "
                           f"{measured['tar']['bytes'] / measured['files']['bytes']:.3f}"})
    rows.append({"measure": "packed frames, read throughput (shuffled, warm cache), frames/s",
                 "value": n / reads["tar"], "baseline": "loose frames, same frames and order, same run",
                 "baseline_value": n / reads["files"], "ratio": reads["files"] / reads["tar"],
                 "goal": ">= 0.8x loose", "met": reads["files"] / reads["tar"] >= 0.8,
                 "detail": f"{n} frames read once each through framestore.read_bytes (one pread at the indexed offset per packed "
                           f"frame): tar {reads['tar']:.3f} s, files {reads['files']:.3f} s; best of 3"})
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(row)
