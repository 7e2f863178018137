"""How long `snakemake -n` takes for large URL lists (no network, nothing executed),
and Snakemake's own floor: a bare workflow with the same two jobs per item and the same
directives (script, log, benchmark, conda, resources) but nothing of ours.

Usage: python benchmarks/dryrun.py [--sizes 1000 10000] [--repeats 3] [--quiet]
Prints a Markdown table; BENCHMARKS.md holds the recorded results.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_dry_run(n_urls: int, workdir: Path, quiet: bool = False) -> float:
    """``snakemake -n`` over a list of ``n_urls`` URLs, printing every job as a user sees
    it (to /dev/null); ``quiet`` prints the job counts only."""
    listing = workdir / f"urls_{n_urls}.txt"
    listing.write_text("".join(f"https://videos.example.org/clip/{i}.mp4\n" for i in range(n_urls)))
    config = workdir / f"config_{n_urls}.yaml"
    config.write_text(f"url_files: [{listing.name}]\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), "-n", *(["--quiet"] if quiet else [])]
    return _seconds(cmd, workdir)


def _seconds(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


# Two chained per-item rules shaped like download -> extract, without our input
# functions, config check or wildcard constraints.
FLOOR_SNAKEFILE = """
ITEMS = [line.strip() for line in open("items.txt")]


rule all:
    input:
        expand("results/frames/{item}.parquet", item=ITEMS),


rule fetch:
    output:
        "results/videos/{item}.info.json",
    log:
        "logs/fetch/{item}.log",
    benchmark:
        "logs/benchmarks/fetch/{item}.tsv"
    conda:
        "env.yaml"
    resources:
        downloads=1,
    script:
        "job.py"


rule frames:
    input:
        "results/videos/{item}.info.json",
    output:
        "results/frames/{item}.parquet",
    log:
        "logs/frames/{item}.log",
    benchmark:
        "logs/benchmarks/frames/{item}.tsv"
    conda:
        "env.yaml"
    threads: 2
    script:
        "job.py"
"""


def time_snakemake_floor(n_items: int, workdir: Path, quiet: bool = False) -> float:
    """``snakemake -n`` of the bare two-rule workflow over ``n_items`` (2 jobs each)."""
    floor = workdir / f"floor_{n_items}"
    floor.mkdir(exist_ok=True)
    (floor / "Snakefile").write_text(FLOOR_SNAKEFILE)
    (floor / "items.txt").write_text("".join(f"url-{i:016x}\n" for i in range(n_items)))
    (floor / "env.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.11]\n")
    (floor / "job.py").write_text("")
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", *(["--quiet"] if quiet else [])]
    return _seconds(cmd, floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quiet", action="store_true", help="snakemake --quiet: job counts, not every job")
    args = parser.parse_args()
    print("| URLs | median s | s per 1k URLs | ratio to smallest | bare Snakemake, same jobs, s | ours / bare |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            median = statistics.median(time_dry_run(n, Path(tmp), args.quiet) for _ in range(args.repeats))
            floor = statistics.median(time_snakemake_floor(n, Path(tmp), args.quiet)
                                      for _ in range(args.repeats))
            base = base or median / n
            print(f"| {n} | {median:.1f} | {median / n * 1000:.2f} | {median / n / base:.2f} | {floor:.1f} | "
                  f"{median / floor:.2f} |")


if __name__ == "__main__":
    main()
