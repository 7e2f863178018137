"""The ``video-miner`` command line: search into the video sheet, see where every video
stands, list and export by status, check a config, and run the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from video_miner.config import ConfigValidationError, load_config, read_config_files
from video_miner.fsutil import printable
from video_miner.sources import ConfigError
from video_miner.stages import STATUSES

REPO = Path(__file__).resolve().parents[1]

config_option = click.option("-c", "--config", "config_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
                             help="config file(s) layered over config/config.yaml, as snakemake --configfile")
workdir_option = click.option("-d", "--directory", "workdir", default=".", type=click.Path(file_okay=False),
                              help="the run's working directory (where results/ is)")


def _config(config_files, workdir) -> dict:
    try:
        return load_config(list(config_files), workdir)
    except (ConfigValidationError, ConfigError) as exc:
        raise click.ClickException(str(exc))


def _run_config(config_files, workdir) -> dict:
    """The configuration to report on: the files given, else the one the last run in
    ``workdir`` recorded (results/run_config.yaml), else the defaults."""
    from video_miner.registry import run_config

    recorded = None if config_files else run_config(workdir)
    return recorded if recorded is not None else _config(config_files, workdir)


def _field(value) -> str:
    """A table value for the terminal: missing is empty (not ``nan``), text escaped."""
    from pandas import isna

    return "" if isna(value) else printable(str(value))


def _statuses(config, workdir):
    from video_miner.registry import video_statuses

    try:
        return video_statuses(config, workdir)
    except ConfigError as exc:
        raise click.ClickException(str(exc))


@click.group()
@click.version_option(package_name="video-miner")
def main():
    """Mine clean, deduplicated, labelled image datasets from video."""


@main.command()
@click.argument("query")
@click.option("-n", "--max-results", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--min-duration", type=click.FloatRange(min=0), help="seconds")
@click.option("--max-duration", type=click.FloatRange(min=0), help="seconds")
@click.option("--sheet", type=click.Path(dir_okay=False), help="the video sheet (default: video_sheet from the config)")
@config_option
@workdir_option
def search(query, max_results, min_duration, max_duration, sheet, config_files, workdir):
    """Search YouTube for QUERY (no download) and add new videos to the sheet."""
    from video_miner.download import DownloadOptions
    from video_miner.search import SearchOptions, search_youtube
    from video_miner.sheet import append_to_sheet

    config = _config(config_files, workdir)
    sheet_path = Path(workdir, sheet or config["video_sheet"] or "config/videos.tsv")
    options = SearchOptions(max_results=max_results, min_duration_s=min_duration, max_duration_s=max_duration)
    try:
        result = search_youtube(query, options, DownloadOptions.from_config(config["download"]))
    except Exception as exc:  # yt-dlp's errors carry the reason in their message
        raise click.ClickException(f"search failed: {printable(str(exc).removeprefix('ERROR: '))}")
    added = append_to_sheet(sheet_path, result["entries"], source=f"search: {query}")
    click.echo(f"{len(result['entries'])} found, {len(added)} new added to {sheet_path} "
               f"({len(result['entries']) - len(added)} already there, {result['filtered_out']} outside the "
               "duration range)")


@main.command()
@config_option
@workdir_option
@click.option("--watch", type=click.FloatRange(min=0.5), help="refresh every this many seconds")
def status(config_files, workdir, watch):
    """Totals per status and how many videos went through each enabled stage."""
    from video_miner.registry import status_counts

    config = _run_config(config_files, workdir)
    while True:
        table = _statuses(config, workdir)
        counts = status_counts(table, config)
        lines = [f"{counts['videos']} videos"]
        lines += [f"  {s:<13}{n:>8}" for s, n in counts["per_status"].items() if n]
        lines.append("reached stage:")
        lines += [f"  {s:<13}{n:>8}" for s, n in counts["reached_stage"].items()]
        lines += _clip_progress_lines(config, workdir)
        failed = table[table["status"] == "failed"]
        if len(failed):
            lines.append("failed:")
            reasons = failed.groupby(["failed_stage", "reason"], dropna=False).size().sort_values(ascending=False)
            lines += [f"  {n:>6} x {_field(stage)}: {_field(reason)}"
                      for (stage, reason), n in reasons.head(10).items()]
        if watch:
            click.clear()
        click.echo("\n".join(lines))
        if not watch:
            return
        time.sleep(watch)


def _clip_progress_lines(config: dict, workdir) -> list[str]:
    """The clip score jobs' progress from the per-video records they write as videos
    finish (results/.cache/clip_scores/<shard>/): clips each stage scored and kept."""
    if not config.get("shots", {}).get("enabled") or not any(config.get(name, {}).get("enabled")
                                                              for name in ("flash", "ocr", "motion", "aesthetic")):
        return []
    from video_miner.clipscores import clip_progress
    folders = sorted(p for p in Path(workdir, "results", ".cache", "clip_scores").glob("*") if p.is_dir())
    progress = clip_progress(folders)
    lines = [f"clip scores: {progress['videos_done']} of {progress['videos']} videos in the started jobs done, "
             f"{progress['clips_per_s']:.1f} clips/s over the last minute",
             f"  {'stage':<13}{'scored':>8}{'kept':>8}"]
    lines += [f"  {name:<13}{c['scored']:>8}{c['kept']:>8}" for name, c in progress["stages"].items()]
    return lines


@main.command(name="list")
@click.option("--status", "wanted", type=click.Choice(STATUSES))
@click.option("-n", "--limit", type=click.IntRange(min=1), help="at most this many rows")
@config_option
@workdir_option
def list_videos(wanted, limit, config_files, workdir):
    """Videos (tab-separated: id, status, location, title, reason)."""
    table = _statuses(_run_config(config_files, workdir), workdir)
    if wanted:
        table = table[table["status"] == wanted]
    if limit:
        table = table.head(limit)
    for row in table.itertuples(index=False):
        click.echo("\t".join(_field(v) for v in (row.video_id, row.status, row.location, row.title, row.reason)))


@main.command()
@click.option("--status", "wanted", required=True, type=click.Choice(STATUSES))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="URL list to write")
@config_option
@workdir_option
def export(wanted, output, config_files, workdir):
    """Write the URLs (or paths) of the videos with a status, one per line: a url_files list."""
    from video_miner.fsutil import write_text_atomic

    table = _statuses(_run_config(config_files, workdir), workdir)
    locations = table.loc[table["status"] == wanted, "location"].tolist()
    write_text_atomic(output, "".join(f"{printable(loc)}\n" for loc in locations))
    click.echo(f"{len(locations)} {wanted} videos written to {output}")


@main.command(name="validate-config")
@config_option
@workdir_option
def validate_config(config_files, workdir):
    """Check a configuration: every problem is listed at once."""
    config = _config(config_files, workdir)
    from video_miner.sources import collect_videos

    try:
        collection = collect_videos(config, workdir)
    except ConfigError as exc:
        raise click.ClickException(str(exc))
    archives = sum(s.kind == "archive" for s in collection.videos.values())
    counted = f"{len(collection.videos) - archives} videos" + (
        f" and {archives} archives (their members are read when they run)" if archives else "")
    click.echo(f"configuration OK: {counted}, {collection.duplicates} duplicates, "
               f"{len(collection.rejected)} rejected inputs")
    for rejected in collection.rejected:
        click.echo(f"  rejected {printable(rejected['origin'])}: {printable(rejected['reason'])}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--profile", default="default", show_default=True,
              help="a folder under the project's profiles/ (default, slurm) or a path")
@config_option
@workdir_option
@click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
def run(profile, config_files, workdir, snakemake_args):
    """Run the workflow with Snakemake; extra arguments go to snakemake (e.g. -n, --cores 8)."""
    try:  # Snakemake parses the files before the workflow's checks run, and names no line
        read_config_files(config_files, workdir)
    except ConfigValidationError as exc:
        raise click.ClickException(str(exc))
    profile_path = REPO / "profiles" / profile if (REPO / "profiles" / profile).is_dir() else Path(profile)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(profile_path)]
    for path in config_files:
        cmd += ["--configfile", str(Path(path).resolve())]
    cmd += list(snakemake_args)
    click.echo(" ".join(cmd), err=True)
    sys.exit(subprocess.call(cmd, env=os.environ.copy()))


if __name__ == "__main__":
    main()
