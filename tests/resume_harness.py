"""Interrupt the real workflow at chosen stages (SIGKILL to the whole process group, or
SIGTERM/SIGINT), resume it, and compare every result with an uninterrupted run.

Used by tests/test_resume.py and by tests/soak_kill.py for longer randomised runs.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
# Fields that measure time or how a resumed job went (what an upload found already there),
# not results.
TIMING_KEYS = {"seconds", "download_seconds", "stage_seconds", "uploaded", "skipped_already_uploaded",
               "uploaded_bytes"}
STAGE_LOGS = {
    "download": "logs/download/*.log",
    "probe": "logs/probe/*.log",
    "video_dedup": "logs/video_dedup/*.log",
    "extract": "logs/extract/*.log",
    "filter": "logs/filter/*.log",
    "embed": "logs/embed/*.log",
    "dedup": "logs/dedup/*.log",
    "detect": "logs/detect/*.log",
    "upload": "logs/upload/*.log",
    "shots": "logs/shots/*.log",
    "cut": "logs/cut/*.log",
    "clips": "logs/clips.log",
    "summary": "logs/summary.log",
}


@dataclass(frozen=True)
class Interruption:
    stage: str  # kill once a job of this rule has started
    delay_s: float  # ... this long after
    signal: int = signal.SIGKILL


def snakemake_cmd(workdir: Path, config_path: Path, *args: str, cores: int = 2) -> list[str]:
    import sys

    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(config_path), "--cores", str(cores), *args]


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "test-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _stage_started(workdir: Path, stage: str, since: float) -> bool:
    return any(p.stat().st_mtime >= since for p in workdir.glob(STAGE_LOGS[stage]))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@contextmanager
def _sigint_as_in_a_terminal():
    """Children started inside get SIGINT's default action. A shell starts background
    commands (``make test &``) with SIGINT ignored, every child inherits that and Python
    keeps it, so a Ctrl-C test would find nothing listening. A handler in this process
    becomes the default action in an exec'd child."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted_run(workdir: Path, config_path: Path, interruption: Interruption, timeout: float = 300,
                    later: Sequence[str] = ()) -> str:
    """Start the workflow and interrupt it as planned. Returns what happened:
    ``interrupted``, ``interrupted at <stage>`` when one of the ``later`` stages began
    first (the planned one had finished in an earlier run: stages on parallel branches
    start in an order no plan can fix, and killing at the next one keeps the rest of the
    plan meaningful), ``finished`` when it completed before the stage began, or
    ``finished despite <signal>`` when it completed in spite of the signal."""
    subprocess.run(snakemake_cmd(workdir, config_path, "--unlock"), cwd=workdir, capture_output=True, check=True)
    started = time.time()
    run_log = workdir / f"interrupted-run-{started:.0f}.log"  # outside results/, not compared
    with run_log.open("wb") as log, _sigint_as_in_a_terminal():
        proc = subprocess.Popen(snakemake_cmd(workdir, config_path), cwd=workdir, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        hit = None
        while not _stage_started(workdir, interruption.stage, started):
            hit = next((stage for stage in later if _stage_started(workdir, stage, started)), None)
            if hit:
                break
            if proc.poll() is not None:
                if proc.returncode != 0:  # a run that fails by itself is a bug, not an interruption
                    raise AssertionError(f"run before {interruption.stage} failed:\n{run_log.read_text()[-6000:]}")
                return "finished"
            if time.time() - started > timeout:
                raise TimeoutError(f"stage {interruption.stage} never started")
            time.sleep(0.05)
        time.sleep(interruption.delay_s)
        os.killpg(proc.pid, interruption.signal)  # the whole group, as a terminal or a scheduler does
        if proc.wait(timeout=120) == 0:  # the timeout: a clean stop must not hang
            return f"finished despite {signal.Signals(interruption.signal).name}"
        deadline = time.time() + 30
        while _group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"jobs outlived snakemake after {signal.Signals(interruption.signal).name}")
        return f"interrupted at {hit}" if hit else "interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def complete_run(workdir: Path, config_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    subprocess.run(snakemake_cmd(workdir, config_path, "--unlock"), cwd=workdir, capture_output=True, check=True)
    proc = subprocess.run(snakemake_cmd(workdir, config_path, "--rerun-incomplete"), cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"resumed run failed:\n{proc.stderr[-6000:]}")
    return proc


def rules_run(proc: subprocess.CompletedProcess) -> set[str]:
    """The rules of the jobs a Snakemake run started (its log)."""
    import re

    return set(re.findall(r"^\s*(?:local)?rule (\w+):$", proc.stdout + proc.stderr, re.M))


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _parquet(path: Path):
    table = pq.read_table(path)
    table = table.drop_columns([c for c in table.column_names if c in TIMING_KEYS])
    meta = {k.decode(): json.loads(v) for k, v in (table.schema.metadata or {}).items() if k == b"video_miner"}
    buffer = io.StringIO()
    table.to_pandas().to_csv(buffer, index=False)  # NaN-safe comparison of every value
    return buffer.getvalue(), _without_timing(meta)


def comparable_results(workdir: Path) -> dict[str, object]:
    """Every result file under results/ in a form where equal means the same result."""
    results = {}
    for path in sorted((workdir / "results").rglob("*")):
        rel = path.relative_to(workdir).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(workdir).parts):
            continue
        if path.suffix == ".parquet":
            results[rel] = _parquet(path)
        elif path.suffix == ".json":
            results[rel] = _without_timing(json.loads(path.read_text()))
        elif path.suffix == ".done":  # an upload marker: the uploaded summary holds timings
            files = json.loads(path.read_text())["files"]
            results[rel] = {f["path"]: f["sha256"] if f["path"] != "pipeline_result.json" else None for f in files}
        elif path.suffix == ".npy":
            results[rel] = np.load(path).tobytes()
        else:
            results[rel] = path.read_bytes()
    return results


def random_plan(seed: int, count: int, stages: list[str]) -> list[Interruption]:
    """``count`` interruptions in stage order, cycling through ``stages``, at seeded
    delays; every third one is a SIGTERM or SIGINT instead of SIGKILL."""
    rng = random.Random(seed)
    plan = []
    for i in range(count):
        sig = signal.SIGKILL if i % 3 else (signal.SIGTERM if i % 2 else signal.SIGINT)
        plan.append(Interruption(stages[i % len(stages)], round(rng.uniform(0.0, 0.6), 3), sig))
    return plan
