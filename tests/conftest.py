"""Shared fixtures: synthetic videos made with PyAV, a loopback HTTP server that serves
them (and misbehaves on purpose), and a helper that runs the real workflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from video_miner.synth import encode_video

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


# Longest first: `make test` runs two workers that each take the next test file as they
# free up, so the files holding the long workflow runs start first and short ones fill in.
LONGEST_FIRST = ("test_demo.py", "test_slurm.py", "test_resume.py", "test_storage.py", "test_detection.py",
                 "test_oneline.py", "test_hostile.py", "test_model_stages.py", "test_workflow.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pattern_frames(count: int, width: int = 320, height: int = 240, seed: int = 0) -> list[np.ndarray]:
    """Frames that differ from each other everywhere (so any mix-up shows in pixels)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        tile = np.roll(base, shift=(i, 2 * i), axis=(0, 1))
        frames.append(np.kron(tile, np.ones((8, 8, 1), np.uint8))[:height, :width].copy())
    return frames


def write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass(frozen=True)
class TestVideos:
    root: Path

    def __getitem__(self, name: str) -> Path:
        return self.root / name


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> TestVideos:
    """Small videos covering the cases extraction must get right."""
    root = tmp_path_factory.mktemp("videos")
    # H.264 with B-frames and a 1 s GOP: 90 frames at 30 fps.
    encode_video(root / "h264.mp4", pattern_frames(90), fps=30, gop=30)
    # VP9 in WebM, another codec and container.
    encode_video(root / "vp9.webm", pattern_frames(40, 160, 120, seed=1), fps=20, codec="libvpx-vp9",
                 options={"deadline": "realtime", "cpu-used": "8"})
    # Variable frame rate: gaps of 1 to 6 hundredths of a second.
    gaps = np.random.default_rng(2).integers(1, 7, 60) / 100
    encode_video(root / "vfr.mp4", pattern_frames(60, seed=2), fps=30, times=np.concatenate([[0], np.cumsum(gaps)[:-1]]))
    # Phone-style VFR: 150 of 300 frame slots kept at random, B-frames, 12-frame GOP
    # (seeks here land on an earlier keyframe); a 10 s gap; timestamps starting at 5 s.
    slots = np.sort(np.random.default_rng(9).choice(300, 150, replace=False))
    encode_video(root / "vfr_drops.mp4", pattern_frames(150, 64, 48, seed=9), fps=30, gop=12, times=slots / 30)
    encode_video(root / "vfr_gap.mp4", pattern_frames(80, 64, 48, seed=10), fps=30, gop=15,
                 times=np.concatenate([np.arange(40) / 30, 10 + np.arange(40) / 30]))
    encode_video(root / "vfr_offset.mp4", pattern_frames(80, 64, 48, seed=11), fps=30, gop=20,
                 options={"bf": "3"}, times=5 + np.arange(80) / 30 + (np.arange(80) % 3 == 0) * 0.011)
    # A phone video: stored landscape, displayed portrait.
    encode_video(root / "rotated.mp4", pattern_frames(30, seed=3), fps=30, rotation=90)
    # Odd dimensions (4:4:4, since 4:2:0 needs even sizes).
    encode_video(root / "odd.mp4", pattern_frames(30, 321, 241, seed=4), fps=30, pix_fmt="yuv444p")
    # Index at the front, then cut in half: the first part is still decodable.
    encode_video(root / "faststart.mp4", pattern_frames(60, seed=5), fps=30, gop=10,
                 container_options={"movflags": "faststart"})
    data = (root / "faststart.mp4").read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    h264 = (root / "h264.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(h264[: len(h264) // 2])  # index at the end: unreadable
    (root / "empty.mp4").write_bytes(b"")
    write_audio_only(root / "audio.m4a")
    encode_video(root / "single_frame.mp4", pattern_frames(1, seed=6), fps=30)
    encode_video(root / "long.mp4", pattern_frames(600, 64, 48, seed=7), fps=30)  # 20 s
    encode_video(root / "huge.mp4", pattern_frames(4, 3840, 2160, seed=8), fps=2)
    (root / "page.html").write_text("<html><head><title>Not a video</title></head><body>hello</body></html>")
    (root / "error.json").write_text('{"error": {"code": 403, "message": "quota exceeded"}}')
    return TestVideos(root)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the test videos, and misbehaves on purpose: /missing/* is 404, /flaky/*
    answers 503 twice first, /slow/* stalls before answering, /loop/* redirects to itself,
    /login/* answers with a login page (200, text/html)."""

    hits: Counter = Counter()

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.hits[self.path] += 1
        if self.path.startswith("/missing/"):
            self.send_error(404, "File not found")
            return
        if self.path.startswith("/flaky/"):
            if self.hits[self.path] <= 2:
                self.send_error(503, "Service Unavailable")
                return
            self.path = self.path.removeprefix("/flaky")
        if self.path.startswith("/slow/"):
            time.sleep(3)  # longer than the tests' socket timeout
            self.path = self.path.removeprefix("/slow")
        if self.path.startswith("/loop/"):
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/login/"):
            page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form></form></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        super().do_GET()

    def do_HEAD(self):
        if self.path.startswith(("/missing/", "/flaky/", "/slow/", "/loop/", "/login/")):
            self.send_error(405)
            return
        super().do_HEAD()


@dataclass
class Server:
    base_url: str
    hits: Counter

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


@pytest.fixture(scope="session")
def http_server(videos) -> Server:
    handler = type("Handler", (_Handler,), {"hits": Counter()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(videos.root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{server.server_address[1]}", handler.hits)
    server.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto) on 127.0.0.1: its URL."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def run_workflow(workdir: Path, config: dict, *args: str, check: bool = True,
                 timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real workflow in ``workdir`` with ``config`` layered over the defaults."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "test-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(config_path),
           "--cores", "2", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


FAST_DOWNLOADS = {"retries": 2, "retry_backoff_s": 0.05, "socket_timeout_s": 5}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-weight SigLIP2, SigLIP and DINOv2 checkpoints saved to disk, loaded by
    path through the config like real ones."""
    from video_miner.tiny_models import BUILDERS

    root = tmp_path_factory.mktemp("models")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def scene_videos(videos) -> TestVideos:
    """Photo-based clips for dedup (a long static shot, two unrelated clips), next to the
    other test videos so the loopback server serves them too."""
    from video_miner.synth import Scene, render_scenes

    root = videos.root
    render_scenes(root / "static_then_cut.mp4", [Scene("astronaut", 4.0, (0.5, 0.45, 1.0)),
                                                Scene("coffee", 1.0, (0.5, 0.5, 1.0))], width=160, height=96, fps=10)
    render_scenes(root / "cat_pan.mp4", [Scene("chelsea", 2.0, (0.2, 0.5, 1.0), (0.8, 0.5, 1.0))],
                  width=160, height=96, fps=10, seed=1)
    render_scenes(root / "rocket_zoom.mp4", [Scene("rocket", 2.0, (0.5, 0.5, 1.0), (0.5, 0.4, 2.0))],
                  width=160, height=96, fps=10, seed=2)
    return TestVideos(root)


class FakeApi:
    """A server that answers each path from a plan: a list of answers used in turn (the
    last one repeats), each ``(status, body, headers, delay_s)``; every request is kept."""

    def __init__(self):
        self.plan: dict[str, list] = {}
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(raw) if raw else None})
                answers = fake.plan.get(self.path) or [(404, {"error": "no such path"}, {}, 0)]
                status, body, headers, delay = answers.pop(0) if len(answers) > 1 else answers[0]
                time.sleep(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout)
                    pass

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]
