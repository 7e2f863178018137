"""Kill the workflow anywhere, resume, and get exactly the results of an uninterrupted run."""

import signal
import subprocess

import pytest

from conftest import FAST_DOWNLOADS
from resume_harness import Interruption, comparable_results, complete_run, interrupted_run, random_plan, write_config

pytestmark = pytest.mark.slow
# In the order an uninterrupted run starts them (the clip branch runs beside the frames);
# a step whose stage already finished kills the run at the next planned stage instead.
STAGES = ["download", "probe", "extract", "shots", "video_dedup", "filter", "embed", "cut", "dedup", "detect", "clips",
          "summary", "upload"]


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
                      "threshold": 0.0,
                      # verify (on with the filter by default) is left out to keep this run's time; its
                      # resumability is cached_frame_results', tested in test_box_stages
                      "verify": False},
        # The clip branch beside the frames: PySceneDetect's content detector (no model to
        # load), clips cut to files and packed as a WebDataset.
        "shots": {"enabled": True, "backend": "content"},
        "clips": {"cut": True, "webdataset": True},
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


@pytest.mark.timeout(1200)  # the reference run (its fixture) counts too; 14 runs beside another test file
def test_killed_at_every_stage_then_resumed_gives_identical_results(tmp_path, resume_config, reference):
    config_path = write_config(tmp_path, resume_config)
    # First a SIGKILL the moment the first download starts (nothing finished yet), then the
    # seeded plan: every stage, each signal.
    plan = [Interruption("download", 0.0), *random_plan(7, len(STAGES), STAGES)]
    outcomes = [interrupted_run(tmp_path, config_path, step, later=[s.stage for s in plan[i + 1:]])
                for i, step in enumerate(plan)]
    assert outcomes[0] == "interrupted"
    said = list(zip([step.stage for step in plan], outcomes))
    assert all(outcome.startswith("interrupted") for outcome in outcomes), said
    assert outcomes.count("interrupted") >= len(plan) - 3, said
    complete_run(tmp_path, config_path)
    resumed = comparable_results(tmp_path)
    assert sorted(resumed) == sorted(reference)
    for name in reference:
        assert resumed[name] == reference[name], f"{name} differs after interruptions"


def test_a_killed_shard_job_keeps_the_videos_it_finished(tmp_path, http_server):
    """One download job for a shard of four URLs, one at a time: killed while it fetches
    the last (a stalling URL), the rerun fetches only that one again."""
    import os
    import time

    from resume_harness import snakemake_cmd

    urls = [http_server.url(p) for p in ("h264.mp4", "vp9.webm", "odd.mp4", "slow/rotated.mp4")]
    config = {"urls": urls, "shard_size": 4, "download": {**FAST_DOWNLOADS, "workers": 1},
              "dedup": {"enabled": False}, "dataset": {"enabled": False}}
    config_path = write_config(tmp_path, config)
    before = {u: http_server.hits[u.removeprefix(http_server.base_url)] for u in urls}
    proc = subprocess.Popen(snakemake_cmd(tmp_path, config_path), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(list((tmp_path / "results" / ".cache" / "download").glob("*/*.json"))) < 3:
            assert proc.poll() is None and time.time() < deadline, "the download job ended before the kill"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # while the fourth, stalling URL is being fetched
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not list((tmp_path / "results").glob("download/*.parquet"))  # the job did not finish
    at_kill = {u: http_server.hits[u.removeprefix(http_server.base_url)] for u in urls}
    assert all(at_kill[u] > before[u] for u in urls[:3])
    complete_run(tmp_path, config_path)
    again = {u: http_server.hits[u.removeprefix(http_server.base_url)] - at_kill[u] for u in urls}
    assert again[urls[0]] == again[urls[1]] == again[urls[2]] == 0 and again[urls[3]] > 0, again
    status = (tmp_path / "results" / "status.tsv").read_text()
    assert status.count("\tcomplete\t") == 4
