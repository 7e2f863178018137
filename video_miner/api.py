"""The Python API: run the workflow, search, see where videos stand, read the COCO file.

``run`` drives Snakemake through its own Python API (``snakemake.api.SnakemakeApi``) in
this process, not a subprocess. Snakemake changes the working directory and installs log
handlers while it runs; ``run`` puts both back, so it can be called again::

    from video_miner import api

    result = api.run({"local_images": ["photos/"], "filter": {"enabled": True, "classes": ["a photo of a cat"]}},
                     "runs/cats", cores=4)
    print(result.ok, result.frames_extracted, result.frames_passed_filter, result.outputs["status"])
    table = api.status("runs/cats")
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
# Where a config given as a dict is written in the working directory: Snakemake reads it
# as a --configfile and results/run_config.yaml records it.
API_CONFIG = Path("config", "api.yaml")
# What a run may leave, by name: RunResult.outputs holds those that exist.
OUTPUTS = {
    "summary": "results/pipeline_result.json",
    "status": "results/status.tsv",
    "run_config": "results/run_config.yaml",
    "videos": "results/metadata/videos.parquet",
    "frames": "results/splits/frames.parquet",
    "annotations": "results/detections/annotations.json",
    "dataset": "results/dataset",
    "yolo": "results/export/yolo",
    "clips": "results/clips/metadata.jsonl",
    "report_funnel": "results/report/funnel.png",
}
# The summary's sections whose counts become attributes: result.videos_ok, result.frames_unique, ...
_COUNTED = ("videos", "frames", "clips")


@dataclass
class RunResult:
    """What a run did: ``ok``, the error when not, the summary (``pipeline_result.json``)
    with its counts as attributes (``videos_total``, ``videos_ok``, ``videos_failed``,
    ``frames_extracted``, ``frames_passed_filter``, ``frames_unique``,
    ``frames_with_detections``, ...; None for a stage that did not run), and the paths
    of the outputs that exist."""

    ok: bool
    workdir: Path
    summary: dict = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    dry_run: bool = False

    @property
    def counts(self) -> dict[str, Any]:
        return {f"{section}_{name}": value for section in _COUNTED
                for name, value in (self.summary.get(section) or {}).items()}

    def __getattr__(self, name: str):
        counts = self.__dict__.get("summary") is not None and self.counts
        if counts and name in counts:
            return counts[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (counts: {', '.join(counts or [])})")


def _config_files(config: dict | str | os.PathLike, workdir: Path) -> list[Path]:
    if isinstance(config, dict):
        from video_miner.fsutil import write_text_atomic

        path = workdir / API_CONFIG
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
        return [path]
    path = Path(config).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {config}")
    return [path]


def _profile_args(profile: str | os.PathLike | None, workdir: Path, files: list[Path], cores: int | None,
                  dry_run: bool):
    """Snakemake's own reading of a profile (a profile is a command-line notion in
    Snakemake: its parser applies it), as the settings the API takes."""
    from snakemake.cli import parse_args

    argv = ["--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    if profile:
        named = REPO / "profiles" / str(profile)
        argv += ["--profile", str(named if named.is_dir() else Path(profile).resolve())]
    if cores is not None:
        argv += ["--cores", str(cores)]
    if dry_run:
        argv.append("--dry-run")
    argv += ["--configfile", *map(str, files)]
    _, args = parse_args(argv)
    if args.cores is None:
        args.cores = 1 if dry_run else args.jobs
    return args


def run(config: dict | str | os.PathLike, workdir: str | os.PathLike = ".", *, cores: int | None = None,
        profile: str | os.PathLike | None = "default", targets: Sequence[str] = (), dry_run: bool = False) -> RunResult:
    """Run the workflow in ``workdir`` with ``config`` (a dict of settings, or a YAML
    file) over the defaults. ``profile``: a folder under the project's profiles/ or a
    path (None: no profile); ``targets``: files to make instead of the whole run.
    Raises :class:`video_miner.config.ConfigValidationError` for a bad configuration (every
    problem listed); a failed run returns ``ok=False`` with the error, and the summary of
    what finished."""
    from video_miner.config import load_config

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    files = _config_files(config, workdir)
    load_config(files, workdir)  # every problem at once, before Snakemake starts
    cwd = os.getcwd()
    loggers = [logging.getLogger(), logging.getLogger("snakemake")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    error = None
    try:
        args = _profile_args(profile, workdir, files, cores, dry_run)
        _execute(args, targets)
    except Exception as exc:  # Snakemake raises for failed jobs; the summary says which
        error = f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(cwd)
        for lg, handlers, level, propagate in saved:
            for handler in set(lg.handlers) - set(handlers):
                lg.removeHandler(handler)
                handler.close()
            for handler in handlers:
                if handler not in lg.handlers:
                    lg.addHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
    return _result(workdir, error, dry_run)


def _execute(args, targets: Sequence[str]) -> None:
    """The settings Snakemake's command line would build from ``args``, through its API."""
    from snakemake.api import SnakemakeApi
    from snakemake.cli import parse_config
    from snakemake.settings import types as settings
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    _usable_stdout()
    executor = args.executor or "local"
    executor_plugin = ExecutorPluginRegistry().get_plugin(executor)
    with SnakemakeApi(settings.OutputSettings(quiet=args.quiet, printshellcmds=args.printshellcmds,
                                              show_failed_logs=args.show_failed_logs)) as api:
        workflow = api.workflow(
            resource_settings=settings.ResourceSettings(
                cores=args.cores, nodes=args.jobs, local_cores=args.local_cores, resources=args.resources,
                overwrite_threads=args.set_threads, overwrite_resources=args.set_resources,
                default_resources=args.default_resources),
            config_settings=settings.ConfigSettings(config=parse_config(args.config), configfiles=args.configfile),
            storage_settings=settings.StorageSettings(),
            workflow_settings=settings.WorkflowSettings(),
            deployment_settings=settings.DeploymentSettings(deployment_method=args.software_deployment_method),
            snakefile=Path(args.snakefile),
            workdir=Path(args.directory),
        )
        dag = workflow.dag(settings.DAGSettings(targets=set(targets), force_incomplete=args.rerun_incomplete,
                                                rerun_triggers=args.rerun_triggers))
        dag.execute_workflow(
            executor=executor,
            pseudo_executor="dryrun" if args.dryrun else None,
            execution_settings=settings.ExecutionSettings(keep_going=args.keep_going,
                                                          latency_wait=args.latency_wait, retries=args.retries),
            executor_settings=executor_plugin.get_settings(args),
        )


def _usable_stdout() -> None:
    """Snakemake hands its jobs the ``sys.stdout`` of its import; one without a file
    descriptor (a test runner's, a notebook's) fails every job: use the process's own."""
    import importlib

    shell = importlib.import_module("snakemake.shell")  # the module: ``snakemake.shell`` is its class
    try:
        shell.STDOUT.fileno()
    except (AttributeError, OSError, ValueError):
        shell.STDOUT = sys.__stdout__


def _result(workdir: Path, error: str | None, dry_run: bool) -> RunResult:
    summary_path = workdir / OUTPUTS["summary"]
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() and not dry_run else {}
    outputs = {name: workdir / rel for name, rel in OUTPUTS.items() if (workdir / rel).exists()}
    return RunResult(ok=error is None, workdir=workdir, summary=summary, outputs=outputs, error=error,
                     dry_run=dry_run)


def search(query: str, max_results: int = 50, *, min_duration_s: float | None = None,
           max_duration_s: float | None = None, download: dict | None = None) -> list[dict]:
    """Search YouTube for ``query`` (no download): entries with url, title, channel and
    duration_s, in result order. ``download``: the config's download section (proxy,
    cookies, ...)."""
    from video_miner.defaults import section_defaults
    from video_miner.download import DownloadOptions
    from video_miner.search import SearchOptions, search_youtube

    options = SearchOptions(max_results=max_results, min_duration_s=min_duration_s, max_duration_s=max_duration_s)
    settings = DownloadOptions.from_config({**section_defaults("download"), **(download or {})})
    return search_youtube(query, options, settings)["entries"]


def status(workdir: str | os.PathLike = ".", config: dict | str | os.PathLike | None = None):
    """One row per video of the run in ``workdir`` (pandas DataFrame): video_id, status,
    failed_stage, reason, kind, location, origin, title. ``config``: the run's settings
    (default: those the last run recorded)."""
    from video_miner.config import filled_config, load_config
    from video_miner.registry import run_config, video_statuses

    if config is None:
        config = run_config(workdir)
        if config is None:
            raise FileNotFoundError(f"no results/run_config.yaml in {workdir}: pass the run's config")
    elif isinstance(config, dict):
        config = filled_config(config, workdir)
    else:
        config = load_config([config], workdir)
    return video_statuses(config, workdir)


def load_coco(workdir: str | os.PathLike = ".", split: str | None = None) -> dict:
    """The run's COCO detections (``split``: train, val or test; None: all)."""
    name = "annotations.json" if split is None else f"annotations_{split}.json"
    return json.loads(Path(workdir, "results", "detections", name).read_text())
