"""How long `snakemake -n` takes for large URL lists (no network, nothing executed).

Usage: python benchmarks/dryrun.py [--sizes 1000 10000] [--repeats 3]
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


def time_dry_run(n_urls: int, workdir: Path) -> float:
    listing = workdir / f"urls_{n_urls}.txt"
    listing.write_text("".join(f"https://videos.example.org/clip/{i}.mp4\n" for i in range(n_urls)))
    config = workdir / f"config_{n_urls}.yaml"
    config.write_text(f"url_files: [{listing.name}]\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), "-n", "--quiet", "all"]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| URLs | jobs | median s | s per 1k URLs | ratio to smallest |")
    print("|---:|---:|---:|---:|---:|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            median = statistics.median(time_dry_run(n, Path(tmp)) for _ in range(args.repeats))
            base = base or median / n
            print(f"| {n} | {2 * n + 2} | {median:.1f} | {median / n * 1000:.2f} | {median / n / base:.2f} |")


if __name__ == "__main__":
    main()
