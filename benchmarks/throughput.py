"""End-to-end throughput, the "200 small clips" run: 200 clips of 4 s at 320x240 served
over loopback HTTP and run through the real workflow (`snakemake --cores 2`, default config
with dedup and dataset off: download, extract, summary, report plots), in videos/s of the
command's wall time, beside two baselines measured in the same run:

- in-process: the same download and extraction through the library in one Python process
  (download_shard + extract_shard over all the videos, 2 workers): what the work costs;
- bare Snakemake: a workflow with the same jobs doing nothing (benchmarks/dryrun.py's
  FLOOR_SNAKEFILE over the same shards): the floor of Snakemake's overhead.

Usage: python benchmarks/throughput.py [--clips 200] [--small]
  --small runs 20 clips (to check the script).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from dryrun import REPO, SNAKEMAKE, floor_command, job_count, run_measured, write_floor

SECONDS, WIDTH, HEIGHT, FPS = 4, 320, 240, 25


def make_clips(folder: Path, count: int) -> list[str]:
    """``count`` clip names in ``folder``: one rendered clip per photo, hard-linked under
    the names in turn (each name is its own URL, so its own video)."""
    from video_miner.synth import PHOTOS, Scene, render_scenes

    folder.mkdir(parents=True)
    sources = []
    for seed, name in enumerate(PHOTOS):
        path = folder / f"source_{name}.mp4"
        render_scenes(path, [Scene(name, SECONDS, (0.3, 0.5, 1.0), (0.7, 0.5, 1.3))], width=WIDTH, height=HEIGHT,
                      fps=FPS, seed=seed)
        sources.append(path)
    names = [f"clip_{i:04d}.mp4" for i in range(count)]
    for i, name in enumerate(names):
        os.link(sources[i % len(sources)], folder / name)
    return names


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # yt-dlp hangs up mid-file after probing a URL: broken pipes are expected


@contextlib.contextmanager
def serve(folder: Path):
    """``folder`` over HTTP on 127.0.0.1; yields the base URL."""
    server = _Server(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def in_process(sources: list[dict], root: Path) -> tuple[float, float]:
    """Seconds to download, then to extract, every video with the library, as the shard
    jobs do (2 workers; one decoder thread per video), but all in one process."""
    from video_miner.download import DownloadOptions, download_shard
    from video_miner.extract import ExtractOptions, extract_shard

    started = time.perf_counter()
    table, _ = download_shard(sources, root / "download", root / "cache" / "download", DownloadOptions(), workers=2)
    download_s = time.perf_counter() - started
    videos = table.to_pandas().query("kept")
    _, record = extract_shard(videos, root / "extract", root / "cache" / "extract", ExtractOptions(threads=1),
                              workers=2)
    extract_s = time.perf_counter() - started - download_s
    ok = sum(o["ok"] for o in record["video_outcomes"].values())
    if ok != len(sources):
        raise RuntimeError(f"in-process: only {ok} of {len(sources)} videos downloaded and extracted")
    return download_s, extract_s


def workflow(urls: list[str], workdir: Path) -> tuple[float, float, int]:
    """Seconds, peak MB (Snakemake or its largest job) and jobs of the real workflow."""
    workdir.mkdir()
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"urls": urls, "dedup": {"enabled": False}, "dataset": {"enabled": False}}))
    log = workdir / "snakemake.log"
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(config),
           "--cores", "2"]
    seconds, peak = run_measured(cmd, workdir, log)
    videos = json.loads((workdir / "results" / "pipeline_result.json").read_text())["videos"]
    if videos["ok"] != len(urls):
        raise RuntimeError(f"workflow: {videos['ok']} of {len(urls)} videos ok: {videos}; see {log}")
    return seconds, peak, job_count(log)


def run(clips: int = 200) -> dict:
    from video_miner.defaults import default
    from video_miner.sources import assign_shards, collect_videos

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_clips(root / "clips", clips)
        with serve(root / "clips") as base:
            urls = [f"{base}/{name}" for name in names]
            collection = collect_videos({"urls": urls})
            shards = assign_shards(collection, default("shard_size"))
            floor_dir = write_floor(root / "floor", list(shards))
            floor_s, _ = run_measured(floor_command("--cores", "2", "--config", "embed=False"), floor_dir,
                                      floor_dir / "snakemake.log")
            floor_jobs = job_count(floor_dir / "snakemake.log")
            sources = [{"video_id": v.video_id, "kind": v.kind, "location": v.location}
                       for v in collection.videos.values()]
            download_s, extract_s = in_process(sources, root / "in_process")
            seconds, peak, jobs = workflow(urls, root / "workflow")
    rate, single_rate = clips / seconds, clips / (download_s + extract_s)
    return {"measure": f"end to end, {clips} clips of {SECONDS} s {WIDTH}x{HEIGHT} (--cores 2), videos/s",
            "value": rate, "baseline": "download + extract in one process", "baseline_value": single_rate,
            "ratio": rate / single_rate, "goal": ">= 5 videos/s", "met": rate >= 5,
            "detail": f"loopback HTTP, dedup and dataset off; {len(shards)} shards, {jobs} jobs: {seconds:.1f} s, "
                      f"peak memory {peak:.0f} MB; in one process: download {download_s:.1f} s + extract "
                      f"{extract_s:.1f} s; bare Snakemake, same {floor_jobs} jobs doing nothing: {floor_s:.1f} s "
                      f"({clips / floor_s:.1f} videos/s at most); issue's figure with one job per video: 0.58 videos/s"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--small", action="store_true", help="20 clips")
    args = parser.parse_args()
    print(run(20 if args.small else args.clips))
