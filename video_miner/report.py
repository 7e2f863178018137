"""Plots for the Snakemake report (``snakemake --report``)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from video_miner.fsutil import atomic_path


def plot_report(out: dict[str, str], summary: dict, coco: dict | None, filter_tables: Sequence[str],
                classes: Sequence[str]) -> None:
    """Report plots: frames per stage, filter score histograms per class, detections per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, path):
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
        plt.close(fig)

    # The funnel comes from the summary, which takes its stages and labels from the registry.
    levels = list(dict.fromkeys(step["level"] for step in summary["funnel"]))
    bars = [sum(step["level"] == level for step in summary["funnel"]) for level in levels]
    fig, axes = plt.subplots(len(levels), 1, figsize=(6, 1 + 0.5 * len(summary["funnel"]) + 0.5 * len(levels)),
                             squeeze=False, gridspec_kw={"height_ratios": bars}, layout="constrained")
    for ax, level in zip(axes[:, 0], levels):
        steps = [step for step in summary["funnel"] if step["level"] == level][::-1]
        ax.barh([step["label"] for step in steps], [step["count"] for step in steps], color="#4477aa")
        for i, step in enumerate(steps):
            ax.text(step["count"], i, f" {step['count']}", va="center")
        ax.set_xlabel(f"{level}s")
    title = "What each stage kept"
    if summary.get("captions"):  # the captions stage's own line: what it made, what failed, what it cost
        made = summary["captions"]
        title += (f"\ncaptions: {made.get('captioned', 0)} made, {sum(made.get('failed', {}).values())} not,"
                  f" {made.get('tokens', {}).get('total', 0)} tokens")
    axes[0, 0].set_title(title)
    save(fig, out["funnel"])

    fig, ax = plt.subplots(figsize=(6, 3))
    scores = pd.concat([pd.read_parquet(p) for p in filter_tables]) if filter_tables else pd.DataFrame()
    score_columns = [c for c in scores.columns if c.startswith("score:")]
    for column in score_columns:
        ax.hist(scores[column].dropna(), bins=30, alpha=0.6, label=column.removeprefix("score:"))
    if score_columns:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "filter disabled", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("filter score")
    ax.set_ylabel("frames")
    ax.set_title("Filter scores per class")
    save(fig, out["scores"])

    fig, ax = plt.subplots(figsize=(6, 3))
    counts = {c: 0 for c in classes}
    names = {c["id"]: c["name"] for c in (coco or {}).get("categories", [])}
    for annotation in (coco or {}).get("annotations", []):
        counts[names[annotation["category_id"]]] = counts.get(names[annotation["category_id"]], 0) + 1
    ax.bar(list(counts), list(counts.values()), color="#cc6677")
    ax.set_ylabel("detections")
    ax.set_title("Detections per class" if coco else "detection disabled")
    save(fig, out["detections"])
