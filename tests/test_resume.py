"""Kill the workflow anywhere, resume, and get exactly the results of an uninterrupted run."""

import signal

import pytest

from conftest import FAST_DOWNLOADS
from resume_harness import Interruption, comparable_results, complete_run, interrupted_run, random_plan, write_config

pytestmark = pytest.mark.slow
STAGES = ["download", "extract", "filter", "embed", "dedup_cross_video", "detect", "summary", "upload"]


@pytest.fixture(scope="module")
def resume_config(http_server, videos, tiny_models):
    return {
        "urls": [http_server.url("h264.mp4"), http_server.url("vp9.webm"), http_server.url("missing/x.mp4")],
        "local_videos": [str(videos["rotated.mp4"])],
        "download": FAST_DOWNLOADS,
        "extract": {"strategy": "time", "every_seconds": 0.25},
        "models": {"device": "cpu", "batch_size": 4},
        "shard_size": 2,
        "filter": {"enabled": True, "model": str(tiny_models["siglip2"]), "classes": ["a photo of a cat"],
                   "threshold": 0.3},
        "dedup": {"model": str(tiny_models["dinov2"]), "threshold": 0.99},
        "detection": {"enabled": True, "backend": "owlv2", "model": str(tiny_models["owlv2"]), "classes": ["cat"],
                      "threshold": 0.0},
        "upload": {"copy": "uploaded"},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, resume_config):
    workdir = tmp_path_factory.mktemp("reference")
    complete_run(workdir, write_config(workdir, resume_config))
    return comparable_results(workdir)


def test_plan_spans_every_stage_and_signal():
    plan = random_plan(seed=7, count=len(STAGES), stages=STAGES)
    assert [i.stage for i in plan] == STAGES
    assert {i.signal for i in plan} == {signal.SIGKILL, signal.SIGTERM, signal.SIGINT}


def test_killed_at_every_stage_then_resumed_gives_identical_results(tmp_path, resume_config, reference):
    config_path = write_config(tmp_path, resume_config)
    outcomes = [interrupted_run(tmp_path, config_path, step) for step in random_plan(7, len(STAGES), STAGES)]
    assert outcomes.count("interrupted") >= len(STAGES) - 2, outcomes
    complete_run(tmp_path, config_path)
    resumed = comparable_results(tmp_path)
    assert sorted(resumed) == sorted(reference)
    for name in reference:
        assert resumed[name] == reference[name], f"{name} differs after interruptions"


def test_sigkill_during_the_first_download_loses_nothing(tmp_path, resume_config, reference):
    config_path = write_config(tmp_path, resume_config)
    assert interrupted_run(tmp_path, config_path, Interruption("download", 0.0)) == "interrupted"
    complete_run(tmp_path, config_path)
    assert comparable_results(tmp_path) == reference
