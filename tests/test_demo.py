"""The demo config end to end, as `make demo` runs it (in a temporary folder)."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, run_workflow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    run_workflow(workdir, yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    return workdir


def frames_of(workdir, title):
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t")
    video_id = status.set_index("title").loc[title, "video_id"]
    return pd.read_parquet(workdir / "results" / "frames" / f"{video_id}.parquet")


def pixels(workdir, path):
    return np.asarray(Image.open(workdir / path), dtype=np.float32)


def test_demo_processes_every_clip(demo_run):
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    assert summary["videos"]["total"] == 4 and summary["videos"]["failed"] == 0
    # 10 s clips sampled every 0.5 s give 20 frames; the 7 s WebM gives 14.
    assert summary["frames"]["extracted"] == 3 * 20 + 14


def test_demo_reupload_is_a_near_duplicate_and_other_clips_are_not(demo_run):
    original = frames_of(demo_run, "astronaut_interview")
    reupload = frames_of(demo_run, "astronaut_reupload")
    other = frames_of(demo_run, "cat_and_rocket")
    assert original["timestamp_s"].tolist() == reupload["timestamp_s"].tolist()
    same = [np.abs(pixels(demo_run, a) - pixels(demo_run, b)).mean() for a, b in zip(original["path"], reupload["path"])]
    different = [np.abs(pixels(demo_run, a) - pixels(demo_run, b)).mean() for a, b in zip(original["path"], other["path"])]
    assert max(same) < 6 < min(different)


def test_demo_static_stretch_repeats_and_scene_returns(demo_run):
    frames = frames_of(demo_run, "astronaut_interview")
    first, second = pixels(demo_run, frames["path"][0]), pixels(demo_run, frames["path"][1])
    coffee = pixels(demo_run, frames["path"][13])  # 6.5 s: the cut to the coffee cup
    back = pixels(demo_run, frames["path"][18])  # 9 s: back to the opening shot
    assert np.abs(first - second).mean() < 4  # the static opening: only sensor noise
    assert np.abs(first - coffee).mean() > 30
    assert np.abs(first - back).mean() < 4
