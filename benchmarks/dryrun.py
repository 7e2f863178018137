"""How long `snakemake -n` takes for large URL lists (no network, nothing executed) and
its peak memory, beside two baselines measured in the same run:

- bare Snakemake: a workflow with the same jobs (download, extract and embed per shard,
  then the run-wide ones) and the same directives (script, log, benchmark, conda,
  resources), over the same shards, but nothing of ours: Snakemake's own floor;
- in-process: our own part of planning, collecting the videos and assigning shards
  (video_miner.sources), in one Python process.

Usage: python benchmarks/dryrun.py [--sizes 1000 10000] [--shard-size 32] [--repeats 3]
Prints a Markdown table; `make bench` records the results in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# Our default job shape without our input functions, params, config check or wildcard
# constraints: three rules per shard, then the run-wide jobs of a default run. With
# `--config embed=False` it is a run with dedup and dataset off (download and extract
# per shard), as benchmarks/throughput.py runs it.
FLOOR_SNAKEFILE = """
SHARDS = open("shards.txt").read().split()
EMBED = config.get("embed", True)
STAGES = ["download", "extract"] + (["embed"] if EMBED else [])


localrules:
    run_config,
    summary,
    dataset,
    report_plots,


rule all:
    input:
        "results/run_config.yaml",
        "results/pipeline_result.json",
        "results/report/funnel.png",
        ["results/dataset"] if EMBED else [],


rule download:
    output:
        table="results/download/{shard}.parquet",
        files=directory("results/download/{shard}"),
    log:
        "logs/download/{shard}.log",
    benchmark:
        "logs/benchmarks/download/{shard}.tsv"
    conda:
        "env.yaml"
    threads: 4
    resources:
        downloads=lambda wildcards, threads: threads,
        mem_mb=2000,
        runtime=120,
    script:
        "job.py"


rule extract:
    input:
        videos="results/download/{shard}.parquet",
        files="results/download/{shard}",
    output:
        table="results/extract/{shard}.parquet",
        frames=directory("results/extract/{shard}"),
    log:
        "logs/extract/{shard}.log",
    benchmark:
        "logs/benchmarks/extract/{shard}.tsv"
    conda:
        "env.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "job.py"


rule embed:
    input:
        frames="results/extract/{shard}.parquet",
        images="results/extract/{shard}",
    output:
        table="results/embed/{shard}.parquet",
        embeddings=directory("results/embed/{shard}"),
    log:
        "logs/embed/{shard}.log",
    benchmark:
        "logs/benchmarks/embed/{shard}.tsv"
    conda:
        "env.yaml"
    threads: 4
    resources:
        gpu=0,
        mem_mb=16000,
        runtime=240,
    script:
        "job.py"


rule dedup:
    input:
        tables=expand("results/embed/{shard}.parquet", shard=SHARDS),
        embeddings=expand("results/embed/{shard}", shard=SHARDS),
    output:
        table="results/dedup/unique_frames.parquet",
        index="results/dedup/cross_video.faiss",
    log:
        "logs/dedup/cross_video.log",
    benchmark:
        "logs/benchmarks/dedup/cross_video.tsv"
    conda:
        "env.yaml"
    threads: 2
    resources:
        mem_mb=32000,
        runtime=480,
    script:
        "job.py"


rule run_config:
    output:
        "results/run_config.yaml",
    log:
        "logs/run_config.log",
    conda:
        "env.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "job.py"


rule summary:
    input:
        expand("results/{stage}/{shard}.parquet", stage=STAGES, shard=SHARDS),
        ["results/dedup/unique_frames.parquet"] if EMBED else [],
    output:
        summary="results/pipeline_result.json",
        status="results/status.tsv",
    log:
        "logs/summary.log",
    conda:
        "env.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "job.py"


rule dataset:
    input:
        frames="results/dedup/unique_frames.parquet",
        videos=expand("results/download/{shard}.parquet", shard=SHARDS),
    output:
        directory("results/dataset"),
    log:
        "logs/dataset.log",
    benchmark:
        "logs/benchmarks/dataset.tsv"
    conda:
        "env.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "job.py"


rule report_plots:
    input:
        "results/pipeline_result.json",
    output:
        funnel="results/report/funnel.png",
        scores="results/report/filter_scores.png",
        detections="results/report/detections_per_class.png",
    log:
        "logs/report_plots.log",
    conda:
        "env.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "job.py"
"""

# A job that does nothing but leave its outputs (Snakemake fails a job without them).
FLOOR_JOB = """from pathlib import Path
for out in map(Path, snakemake.output):
    out.touch() if out.suffix else out.mkdir(exist_ok=True)  # directory outputs have no suffix
"""


def write_floor(folder: Path, shards: list[str]) -> Path:
    """The bare workflow over ``shards`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(FLOOR_SNAKEFILE)
    (folder / "shards.txt").write_text("".join(f"{s}\n" for s in shards))
    (folder / "env.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.11]\n")
    (folder / "job.py").write_text(FLOOR_JOB)
    return folder


def floor_command(*args: str) -> list[str]:
    # Our workflow's profile (resources, keep-going, latency-wait...) applies to the floor too.
    return [*SNAKEMAKE, "--workflow-profile", str(REPO / "profiles" / "default"), *args]


def run_measured(cmd: list[str], cwd: Path, log: Path) -> tuple[float, float]:
    """Wall seconds and peak memory in MB of ``cmd`` (the max RSS of the process and of the
    processes it waited for); its output goes to ``log``."""
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        # wait4, not Popen.wait: it also returns the child's resource usage, max RSS included.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def job_count(log: Path) -> int:
    """The job total of Snakemake's first "Job stats" table in ``log``."""
    return int(re.search(r"^total\s+(\d+)\s*$", log.read_text(), re.M).group(1))


def url_list(n_urls: int, workdir: Path) -> Path:
    listing = workdir / f"urls_{n_urls}.txt"
    if not listing.exists():
        listing.write_text("".join(f"https://videos.example.org/clip/{i}.mp4\n" for i in range(n_urls)))
    return listing


def in_process(listing: Path, shard_size: int) -> tuple[float, dict[str, list[str]]]:
    """Seconds our own code takes to collect the list's videos and assign shards, and the shards."""
    from video_miner.sources import assign_shards, collect_videos

    collect_videos({})  # its lazy imports (pandas) are loaded in Snakemake before our code runs
    started = time.perf_counter()
    shards = assign_shards(collect_videos({"url_files": [listing.name]}, str(listing.parent)), shard_size)
    return time.perf_counter() - started, shards


def dry_run(listing: Path, shard_size: int | None, workdir: Path) -> tuple[float, float, int]:
    """``snakemake -n`` of our workflow, printing every job as a user sees it: seconds,
    peak MB and jobs. ``shard_size`` None keeps the default config's."""
    tag = f"{listing.stem}_{shard_size or 'default'}"
    config = workdir / f"config_{tag}.yaml"
    config.write_text(f"url_files: [{listing.name}]\n" + (f"shard_size: {shard_size}\n" if shard_size else ""))
    log = workdir / f"dryrun_{tag}.log"
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(config), "-n"]
    return *run_measured(cmd, workdir, log), job_count(log)


def floor_dry_run(shards: list[str], workdir: Path) -> tuple[float, float, int]:
    """``snakemake -n`` of the bare workflow over the same shards: seconds, peak MB and jobs."""
    folder = write_floor(workdir / f"floor_{len(shards)}", shards)
    log = folder / "dryrun.log"
    return *run_measured(floor_command("-n", "--cores", "2"), folder, log), job_count(log)


def measure(n_urls: int, shard_size: int | None, repeats: int, workdir: Path) -> dict:
    """Medians over ``repeats`` of our dry run and both baselines for ``n_urls`` URLs."""
    from video_miner.defaults import default

    listing = url_list(n_urls, workdir)
    ours, floor, inproc = [], [], []
    for _ in range(repeats):
        seconds, shards = in_process(listing, shard_size or default("shard_size"))
        inproc.append(seconds)
        ours.append(dry_run(listing, shard_size, workdir))
        floor.append(floor_dry_run(list(shards), workdir))
    seconds, peaks, jobs = zip(*ours)
    floor_seconds, floor_peaks, floor_jobs = zip(*floor)
    return {"urls": n_urls, "shard_size": shard_size or default("shard_size"), "shards": len(shards),
            "seconds": statistics.median(seconds), "peak_mb": statistics.median(peaks), "jobs": jobs[0],
            "floor_seconds": statistics.median(floor_seconds), "floor_peak_mb": statistics.median(floor_peaks),
            "floor_jobs": floor_jobs[0],
            "in_process_seconds": statistics.median(inproc)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--shard-size", type=int, help="default: the config's default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| URLs | shards | jobs | seconds | peak MB | bare Snakemake s (jobs) | bare peak MB | ours / bare | "
          "collect + assign_shards in-process s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            r = measure(n, args.shard_size, args.repeats, Path(tmp))
            print(f"| {n} | {r['shards']} | {r['jobs']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                  f"{r['floor_seconds']:.1f} ({r['floor_jobs']}) | {r['floor_peak_mb']:.0f} | "
                  f"{r['seconds'] / r['floor_seconds']:.2f} | {r['in_process_seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
