"""`make bench`: every performance goal measured against its baseline in one run; the
results replace the generated part of BENCHMARKS.md (between the bench markers), with
the machine and versions. Absolute times on shared machines are noise: the ratios to
baselines measured in the same run are the figures.

Usage: python benchmarks/run.py [--repeats 3] [--full]
                                [--only extraction dryrun throughput overhead dedup video_dedup shots clip_scores
                                        packed_frames isolated_decode gpu]
  --full adds the long measures: `snakemake -n` for 100k URLs and for 1M URLs at
  shard_size 256, cross-video dedup of 1M frames and video dedup of 1M videos (30+
  minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    except ImportError:
        pass
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("snakemake", "av", "torch", "transformers", "faiss-cpu", "pillow", "numpy"))
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB memory, GPU: {gpu}; Python "
            f"{platform.python_version()}; {versions}")


# (URLs, shard_size or None for the default config's, goal in seconds, the figure
# with two jobs per video); --full adds the larger two.
DRYRUN_GOALS = [(10_000, None, 10, 45), (100_000, None, 60, 414), (1_000_000, 256, 600, None)]


def dryrun_rows(repeats: int, full: bool) -> list[dict]:
    from dryrun import measure

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, shard_size, limit, before in DRYRUN_GOALS if full else DRYRUN_GOALS[:1]:
            r = measure(n, shard_size, repeats if n <= 10_000 else 1, Path(tmp))
            rows.append({"measure": f"`snakemake -n`, {n:,} URLs, shard_size {r['shard_size']}, seconds",
                         "value": r["seconds"], "baseline": "bare Snakemake, same jobs and directives",
                         "baseline_value": r["floor_seconds"], "ratio": r["seconds"] / r["floor_seconds"],
                         "goal": f"<= {limit} s", "met": r["seconds"] <= limit,
                         "detail": f"{r['shards']:,} shards, {r['jobs']:,} jobs (bare: {r['floor_jobs']:,}); peak "
                                   f"memory {r['peak_mb']:,.0f} MB (bare {r['floor_peak_mb']:,.0f} MB); collect + "
                                   f"assign_shards in one process {r['in_process_seconds']:.2f} s"
                                   + (f"; issue's figure with two jobs per video: {before} s" if before else "")})
    return rows


def dedup_rows(full: bool) -> list[dict]:
    from cross_video_dedup import run

    rows = []
    for n in [100_000] + ([1_000_000] if full else []):
        r = run(n, 200_000, 0.9)
        goal, met = ("recall >= 0.98", r["recall_planted"] >= 0.98) if n < 1_000_000 else \
            ("<= 900 s, recall >= 0.98", r["seconds"] <= 900 and r["recall_planted"] >= 0.98)
        rows.append({"measure": f"cross-video dedup, {n:,} x 768, seconds", "value": r["seconds"],
                     "baseline": "planted duplicate pairs (recall)", "baseline_value": r["recall_planted"],
                     "ratio": r["recall_planted"], "goal": goal, "met": met,
                     "detail": f"{r['index']}; kept {r['kept']:,} of expected {r['expected_kept']:,}"})
    return rows


def video_dedup_rows(full: bool) -> list[dict]:
    from video_dedup import measured_flips, run

    flips = measured_flips()
    rows = []
    for n in [100_000] + ([1_000_000] if full else []):
        r = run(n, flips)
        goal, met = ("recall >= 0.99", r["recall_planted"] >= 0.99) if n < 1_000_000 else \
            ("<= 600 s, recall >= 0.99", r["seconds"] <= 600 and r["recall_planted"] >= 0.99)
        rows.append({"measure": f"video dedup grouping, {n:,} videos x 8 hashes, seconds", "value": r["seconds"],
                     "baseline": "planted copies (recall)", "baseline_value": r["recall_planted"],
                     "ratio": r["recall_planted"], "goal": goal, "met": met,
                     "detail": f"copies' bits flipped per frame as measured on the demo's re-upload: {flips}; "
                               f"{r['false_duplicates']} false duplicates"})
    return rows


def gpu_rows(report: str = "") -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        if "bare forward on device tensors" in report:
            return []  # measured on a GPU machine earlier: keep those rows, no placeholder beside them
        return [{"measure": "filter / embed / detect frames/s on a GPU", "value": None, "baseline": "bare forward",
                 "baseline_value": None, "ratio": None, "goal": ">= 0.8x", "met": None,
                 "detail": "not measured: no GPU on this machine (benchmarks/gpu_stages.py runs there)"}]
    from gpu_stages import run

    return run()


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(rows: list[dict]) -> str:
    lines = ["| measure | value | baseline | baseline value | ratio | goal | met | detail |",
             "|---|---:|---|---:|---:|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
        lines.append(f"| {r['measure']} | {fmt(r['value'])} | {r['baseline']} | {fmt(r['baseline_value'])} | "
                     f"{fmt(r['ratio'])} | {r['goal']} | {met} | {r['detail']} |")
    return "\n".join(lines)


def earlier_rows(text: str, date: str) -> list[str]:
    """The table lines of the last report, each marked with the date it was measured."""
    section = re.search(re.escape(START) + ".*?" + re.escape(END), text, flags=re.S)
    if not section:
        return []
    measured = re.search(r"\(measured (\d{4}-\d{2}-\d{2})\)|Latest `make bench` \((\d{4}-\d{2}-\d{2})\)",
                         section.group(0))
    lines = []
    for line in section.group(0).splitlines():
        if line.startswith("| ") and not line.startswith("| measure |"):
            if "(measured " not in line:
                day = next((d for d in (measured.groups() if measured else ()) if d), date)
                cells = line.split(" | ")
                cells[0] = f"{cells[0]} (measured {day})"
                line = " | ".join(cells)
            lines.append(line)
    return lines


def write_report(rows: list[dict], repeats: int) -> None:
    """Replace the generated section; rows measured in an earlier run and not now (a
    partial `--only` run) are kept, marked with the date they were measured."""
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    today = dt.date.today().isoformat()
    measures = {r["measure"] for r in rows}
    kept = [line for line in earlier_rows(text, today)
            if re.sub(r" \(measured [0-9-]+\)$", "", line.split(" | ")[0].removeprefix("| ")) not in measures]
    body = table(rows) + "".join(f"\n{line}" for line in kept)
    section = (f"{START}\n## Latest `make bench` ({today})\n\n"
               f"Machine: {machine()}.\n\nMedians of {repeats} runs where repeated; ratios are to the baseline "
               f"measured in the same run. Rows marked (measured DATE) come from an earlier run.\n\n{body}\n{END}")
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        head, _, rest = text.partition("\n")
        text = f"{head}\n\n{section}\n{rest}"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", nargs="+", default=["extraction", "dryrun", "throughput", "overhead", "dedup",
                                                      "video_dedup", "shots", "clip_scores", "packed_frames",
                                                      "isolated_decode", "gpu"])
    args = parser.parse_args()
    rows = []
    if "extraction" in args.only:
        import extraction

        rows += extraction.run(args.repeats)
        print(table(rows), flush=True)
    if "dryrun" in args.only:
        rows += dryrun_rows(args.repeats, args.full)
    if "throughput" in args.only:
        import throughput

        rows.append(throughput.run())
    if "overhead" in args.only:
        import job_overhead

        rows.append(job_overhead.run())
    if "dedup" in args.only:
        rows += dedup_rows(args.full)
    if "video_dedup" in args.only:
        rows += video_dedup_rows(args.full)
    if "shots" in args.only:
        import shots

        rows += shots.run(args.repeats)
        import shot_thresholds

        rows += shot_thresholds.rows()
    if "clip_scores" in args.only:
        import clip_scores

        rows += clip_scores.run(args.repeats)
    if "packed_frames" in args.only:
        import packed_frames

        rows += packed_frames.run()
    if "isolated_decode" in args.only:
        import isolated_decode

        rows += isolated_decode.run(args.repeats)
    if "gpu" in args.only:
        report = REPO / "BENCHMARKS.md"
        rows += gpu_rows(report.read_text() if report.exists() else "")
    print(table(rows))
    write_report(rows, args.repeats)


if __name__ == "__main__":
    main()
