"""The ``video-miner`` command line: search into the video sheet, see where every video
stands, list and export by status, check a config, and run the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

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


@main.command(name="fetch-models")
@config_option
@workdir_option
@click.option("--list", "list_only", is_flag=True, help="only list the models, download nothing")
def fetch_models(config_files, workdir, list_only):
    """Download every hub model the configuration's stages load into the Hugging Face
    cache (HF_HOME), on a node with internet; jobs can then run with HF_HUB_OFFLINE=1."""
    from video_miner.hub import fetch_models as fetch
    from video_miner.modellist import config_models

    models = config_models(_config(config_files, workdir))
    if not models:
        click.echo("no hub models to fetch (local folders and models that ship in packages need none)")
        return
    if list_only:
        click.echo("\n".join(models))
        return
    try:
        folders = fetch(models, echo=click.echo)
    except Exception as exc:  # one line: which model and why (no traceback for a network error)
        raise click.ClickException(f"fetching failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    for model, folder in folders.items():
        click.echo(f"{model}: {folder}")


@main.command(name="verify-manifest")
@click.argument("target", type=click.Path(exists=True))
def verify_manifest(target):
    """Check an export against its manifest: an export folder (its manifest.json) or a
    manifest file (e.g. results/detections/annotations.manifest.json)."""
    from video_miner.manifest import verify_manifest as verify

    problems = verify(target)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problems: the export does not match its manifest")
    click.echo("manifest OK: every file matches")


def _profile_path(profile: str) -> Path:
    return REPO / "profiles" / profile if (REPO / "profiles" / profile).is_dir() else Path(profile)


def _snakemake(workdir, config_files, profile, args) -> int:
    """Run the workflow in ``workdir`` in a Snakemake process of its own."""
    # Targets and the user's arguments before --configfile, which takes every word after it.
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args,
           "--profile", str(_profile_path(profile))]
    if config_files:  # one --configfile with every file: a second one would replace the first
        cmd += ["--configfile", *(str(Path(path).resolve()) for path in config_files)]
    click.echo(" ".join(cmd), err=True)
    return subprocess.call(cmd, env=os.environ.copy())


def _multiple(*names, **kwargs):
    return click.option(*names, multiple=True, **kwargs)


# The flags that set the run's configuration (video_miner.flags maps them to config keys).
input_options = [
    _multiple("-i", "--input", "inputs", type=click.Path(exists=True),
              help="a video file, or a folder of videos and/or images (scanned recursively); repeatable"),
]
run_input_options = [
    _multiple("-u", "--url", "urls", help="a video URL; repeatable"),
    _multiple("-f", "--url-file", "url_files", type=click.Path(exists=True, dir_okay=False),
              help="a file of URLs, one per line; repeatable"),
    click.option("--limit", type=click.IntRange(min=1),
                 help="a pilot run on this many of the videos (max_videos: the same N, the same videos)"),
]
class_options = [
    _multiple("-k", "--class", "classes", help='an object class: filter prompt "a photo of a CLASS" and detection '
              "class (turns both stages on); repeatable"),
    _multiple("--filter-prompt", "filter_prompts", help="a filter prompt (instead of the --class ones); repeatable"),
    _multiple("--detect-class", "detect_classes", help="a detection class (instead of --class); repeatable"),
]
model_options = [
    click.option("--detector", help="detection backend (grounding_dino, owlv2, florence2, opencv, moondream, dinox)"),
    click.option("--filter-model", help="filter checkpoint (SigLIP2/SigLIP): hub id or folder"),
    click.option("--dedup-model", help='dedup embedding checkpoint; "filter" reuses the filter\'s (low memory)'),
    click.option("--batch-size", type=int, help="images per model batch"),
    click.option("--device", help="auto, cpu, cuda, cuda:N"),
]
sampling_options = [
    click.option("--sampling", help="frame sampling: interval, time, keyframe, scene"),
    click.option("--interval", type=int, help="every Nth frame (--sampling interval)"),
    click.option("--every-seconds", type=float, help="one frame per this many seconds (--sampling time)"),
]
threshold_options = [
    click.option("--filter-threshold", type=float, help="filter score a frame needs"),
    click.option("--dedup-threshold", type=float, help="cosine similarity above which frames are duplicates"),
    click.option("--detection-threshold", type=float, help="box score a detection needs"),
]
common_run_options = [
    config_option,
    click.option("--profile", default="default", show_default=True,
                 help="a folder under the project's profiles/ (default, slurm) or a path"),
    click.option("-n", "--dry-run", is_flag=True, help="show what would run"),
]


def _options(*groups):
    def decorate(command):
        for group in reversed(groups):
            for option in reversed(group):
                command = option(command)
        return command
    return decorate


def _flag_values(params: dict) -> dict:
    """The click parameters under their flags' names (video_miner.flags' keys)."""
    names = {"inputs": "--input", "urls": "--url", "url_files": "--url-file", "classes": "--class",
             "filter_prompts": "--filter-prompt", "detect_classes": "--detect-class", "stages": "--stages"}
    values = {}
    for key, value in params.items():
        flag = names.get(key, "--" + key.replace("_", "-"))
        values[flag] = [os.path.abspath(v) for v in value] if key in ("inputs", "url_files") else value
    return values


def _prepare(config_files, workdir, values: dict) -> list[str]:
    """Check the ``-c`` files and the flags together, write the flags' settings into the
    working directory, and return the config files the run reads (the flags' last)."""
    from video_miner.defaults import default
    from video_miner.flags import FLAGS_FILE, flags_config, name_flags

    try:  # Snakemake parses the files before the workflow's checks run, and names no line
        base = read_config_files(config_files, workdir)
    except ConfigValidationError as exc:
        raise click.ClickException(str(exc))
    exts = base.get("local_extensions", default("local_extensions"))
    image_exts = base.get("image_extensions", default("image_extensions"))
    flags, problems = flags_config(values, exts, image_exts)
    if problems:
        raise click.ClickException("\n".join(problems))
    flags_path = Path(workdir, FLAGS_FILE)
    files = list(config_files)
    if flags:
        from video_miner.fsutil import write_text_atomic

        flags_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(flags_path, yaml.safe_dump(flags, sort_keys=False))
        files.append(str(flags_path))
    else:
        flags_path.unlink(missing_ok=True)  # a former run's flags are not this run's settings
    try:
        config = load_config(files, workdir)
    except ConfigValidationError as exc:
        raise click.ClickException(name_flags(str(exc), flags))
    except ConfigError as exc:
        raise click.ClickException(str(exc))
    _require_inputs(config, workdir)
    return files


def _require_inputs(config: dict, workdir) -> None:
    from video_miner.sources import collect_videos

    try:
        collection = collect_videos(config, str(workdir))
    except ConfigError as exc:
        raise click.ClickException(str(exc))
    if not (collection.videos or config["search"]["queries"] or collection.rejected):
        raise click.ClickException("no input: give videos or images with -i PATH, URLs with -u URL or -f FILE, "
                                   "or a config file (-c) that lists some")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@_options(run_input_options, input_options, class_options, model_options, sampling_options, threshold_options)
@click.option("--stages", multiple=True, help="the stages to run, comma-separated (e.g. filter,embed,dedup,detect): "
              "the others off; download, probe and extract always run")
@click.option("-o", "--output-dir", "-d", "--directory", "workdir", default=".", type=click.Path(file_okay=False),
              help="the run's working directory (results/ is made there)")
@_options(common_run_options)
@click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
def run(workdir, config_files, profile, dry_run, snakemake_args, **flags):
    """Run the workflow with Snakemake, from flags, config files (-c) or both; arguments
    after -- go to snakemake (e.g. -- --cores 8)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    files = _prepare(config_files, workdir, _flag_values(flags))
    sys.exit(_snakemake(workdir, files, profile, [*(["-n"] if dry_run else []), *snakemake_args]))


# Stage commands: the workflow up to one frame stage on an image folder (or a former
# stage command's output), then the kept images into the output folder.
STAGE_COMMANDS = {
    "filter": ("filter", "--filter-threshold", ["filter"]),
    "deduplicate": ("dedup", "--dedup-threshold", ["embed", "dedup"]),
    "detect": ("detect", "--detection-threshold", ["detect"]),
}


def _stage_command(name: str, help_text: str):
    stage_name, threshold_flag, stages = STAGE_COMMANDS[name]

    @main.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True,
                                                               "allow_extra_args": True})
    @click.option("-i", "--input", "inputs", multiple=True, required=True, type=click.Path(exists=True),
                  help="a folder of images (or of videos), e.g. a former stage command's output; repeatable")
    @click.option("-o", "--output-dir", "output", required=True, type=click.Path(file_okay=False),
                  help="where the kept images go, with the stage's table")
    @click.option("--threshold", type=float, help=f"the stage's threshold ({threshold_flag})")
    @click.option("--work-dir", type=click.Path(file_okay=False),
                  help="the run's working directory (default: OUTPUT/.video-miner, kept so a rerun resumes)")
    @_options(class_options, model_options, sampling_options, common_run_options)
    @click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
    def command(inputs, output, threshold, work_dir, config_files, profile, dry_run, snakemake_args, **flags):
        from video_miner.stagecommand import TARGETS, collect_kept

        workdir = Path(work_dir or Path(output, ".video-miner"))
        workdir.mkdir(parents=True, exist_ok=True)
        values = _flag_values({"inputs": inputs, **flags, "stages": (",".join(stages),)})
        if threshold is not None:
            values[threshold_flag] = threshold
        files = _prepare(config_files, workdir, values)
        code = _snakemake(workdir, files, profile, [*(["-n"] if dry_run else []), *TARGETS[stage_name],
                                                    *snakemake_args])
        if code or dry_run:
            sys.exit(code)
        kept = collect_kept(workdir, stage_name, output, [os.path.abspath(p) for p in inputs])
        click.echo(f"{kept['kept']} of {kept['images']} images kept in {output} ({kept['table']})")

    return command


_stage_command("filter", "Keep the images that match text prompts (-k CLASS or --filter-prompt).")
_stage_command("deduplicate", "Keep one image of each group of near-duplicates.")
_stage_command("detect", "Detect objects (-k CLASS) in the images: the images with detections, their boxes and "
               "results/detections/annotations.json (COCO) in the work folder.")


if __name__ == "__main__":
    main()
