"""Frame extraction against its baselines, on a 60 s 1080p H.264 video (30 fps, 2 s GOP,
B-frames) rendered once from scikit-image photos and cached.

- dense: every frame decoded and converted to RGB by video-miner's extraction path,
  against ``ffmpeg -threads 0 -i X -f null -`` (decode only, no RGB conversion);
- sparse: 1 frame/s (strategy time) against video-miner's own full decode;
- keyframe: I-frames only against the full decode;
- JPEG writing: every frame written as JPEG against the same decode without writing.

Usage: python benchmarks/extraction.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

CACHE = Path.home() / ".cache" / "video-miner-bench"
SECONDS, FPS, SIZE = 60, 30, (1920, 1080)


def bench_video() -> Path:
    """The benchmark video, rendered on first use (a few minutes on 2 cores)."""
    from video_miner.synth import Scene, render_scenes

    path = CACHE / f"pan_{SECONDS}s_{SIZE[1]}p_{FPS}fps.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        scenes = [Scene(photo, SECONDS / 6, (0.3, 0.5, 1.0), (0.7, 0.4, 1.5))
                  for photo in ("astronaut", "coffee", "chelsea", "rocket", "camera", "astronaut")]
        render_scenes(path, scenes, width=SIZE[0], height=SIZE[1], fps=FPS, options={"bf": "3"})
    return path


def ffmpeg_decode(path: Path) -> float:
    import imageio_ffmpeg

    started = time.perf_counter()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-threads", "0", "-i", str(path), "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - started


def pyav_decode(path: Path, threads: int) -> float:
    """Decode only (no colour conversion), as the ffmpeg baseline does."""
    import av

    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "AUTO", threads
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - started


def extract(path: Path, write: bool, threads: int, **options) -> tuple[float, int]:
    """Seconds and frames for video-miner's extraction; without ``write`` frames are
    decoded and converted to RGB but not encoded or written."""
    from video_miner import extract as extraction

    with tempfile.TemporaryDirectory() as out:
        opts = extraction.ExtractOptions(threads=threads, **options)
        no_writing = mock.patch.object(extraction._FrameWriter, "_save", lambda self, rgb, p: None)
        with contextlib.nullcontext() if write else no_writing:
            started = time.perf_counter()
            result = extraction.extract_video(path, out, "bench", opts)
            seconds = time.perf_counter() - started
    assert result.status == "ok", result.reason
    return seconds, len(result.rows)


def median_of(repeats: int, fn):
    runs = [fn() for _ in range(repeats)]
    if isinstance(runs[0], tuple):
        return statistics.median(r[0] for r in runs), runs[0][1]
    return statistics.median(runs)


def run(repeats: int = 3, threads: int = 2) -> list[dict]:
    path = bench_video()
    frames_total = SECONDS * FPS
    ffmpeg_s = median_of(repeats, lambda: ffmpeg_decode(path))
    pyav_s = median_of(repeats, lambda: pyav_decode(path, threads))
    dense_s, dense_n = median_of(repeats, lambda: extract(path, False, threads, strategy="interval", every_n_frames=1))
    sparse_s, sparse_n = median_of(repeats, lambda: extract(path, False, threads, strategy="time", every_seconds=1.0))
    key_s, key_n = median_of(repeats, lambda: extract(path, False, threads, strategy="keyframe"))
    jpeg_s, _ = median_of(repeats, lambda: extract(path, True, threads, strategy="interval", every_n_frames=1))
    return [
        {"measure": "dense extraction (every frame, RGB), frames/s", "value": dense_n / dense_s,
         "baseline": "ffmpeg -threads 0 -f null decode", "baseline_value": frames_total / ffmpeg_s,
         "ratio": (dense_n / dense_s) / (frames_total / ffmpeg_s), "goal": ">= 0.9x", "met": (ffmpeg_s / dense_s) >= 0.9,
         "detail": f"{dense_n} frames: {dense_s:.1f} s vs ffmpeg {ffmpeg_s:.1f} s; PyAV decode alone (no RGB) "
                   f"{pyav_s:.1f} s"},
        {"measure": "sparse time sampling (1 frame/s), speed-up", "value": dense_s / sparse_s,
         "baseline": "full decode (same path)", "baseline_value": 1.0, "ratio": dense_s / sparse_s,
         "goal": ">= 3x", "met": dense_s / sparse_s >= 3,
         "detail": f"{sparse_n} frames in {sparse_s:.1f} s vs full decode {dense_s:.1f} s"},
        {"measure": "keyframe sampling, speed-up", "value": dense_s / key_s,
         "baseline": "full decode (same path)", "baseline_value": 1.0, "ratio": dense_s / key_s,
         "goal": ">= 10x", "met": dense_s / key_s >= 10,
         "detail": f"{key_n} keyframes in {key_s:.1f} s vs full decode {dense_s:.1f} s"},
        {"measure": "JPEG writing of every frame, time added", "value": jpeg_s / dense_s - 1,
         "baseline": "decode alone (same path)", "baseline_value": 0.0, "ratio": jpeg_s / dense_s,
         "goal": "<= +20%", "met": jpeg_s / dense_s <= 1.2,
         "detail": f"{dense_n} JPEGs (quality 90, {threads} writer threads): {jpeg_s:.1f} s vs decode {dense_s:.1f} s"},
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    for row in run(parser.parse_args().repeats):
        print(row)
