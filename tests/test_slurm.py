"""The same workflow through a real single-node SLURM cluster (tests/slurm/cluster.sh):
submitted with profiles/slurm, results equal to a local run's."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST_DOWNLOADS, REPO
from resume_harness import comparable_results, snakemake_cmd, write_config

# Bringing the cluster up (installing SLURM on a fresh machine) counts toward the first test's limit.
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1200)]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
# Fit jobs on the test node (2 cores, one fake GPU); bill the account cluster.sh made.
SITE = {
    "VIDEO_MINER_SLURM_PARTITION": "debug",
    "VIDEO_MINER_SLURM_ACCOUNT": "ci",
    "VIDEO_MINER_SLURM_MEM_MB": "1000",
    "VIDEO_MINER_SLURM_RUNTIME": "10",
    "VIDEO_MINER_CPUS_PER_GPU": "1",
    "VIDEO_MINER_GPU_MEM_MB": "2000",
    "VIDEO_MINER_GPU_RUNTIME": "10",
    "VIDEO_MINER_DEDUP_MEM_MB": "2000",
}


def why_no_cluster() -> str | None:
    if os.environ.get("VIDEO_MINER_SKIP_SLURM"):
        return "VIDEO_MINER_SKIP_SLURM is set"
    if os.geteuid() != 0:
        return "bringing up SLURM needs root (munge, slurmctld, slurmd run as root)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is not available to install it"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = why_no_cluster()
    if reason:
        pytest.skip(f"no SLURM cluster: {reason}")
    up = subprocess.run([str(CLUSTER), "up"], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.fail(f"cluster.sh up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    yield
    subprocess.run([str(CLUSTER), "down"], capture_output=True, timeout=120)


def run_on_slurm(workdir, config, timeout=420):
    """Snakemake with the SLURM profile; killed (with its jobs) if it outlives timeout."""
    config_path = write_config(workdir, config)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config_path), "--profile", str(REPO / "profiles" / "slurm"),
           "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4"]
    env = {**os.environ, **SITE, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake ignores SIGTERM while polling
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        output, _ = proc.communicate()
        pytest.fail(f"snakemake on SLURM hung for {timeout}s:\n{output[-4000:]}")
    return proc.returncode, output


@pytest.fixture(scope="module")
def slurm_config(http_server, tiny_models):
    return {
        "urls": [http_server.url("h264.mp4"), http_server.url("vp9.webm"), http_server.url("missing/x.mp4")],
        "download": FAST_DOWNLOADS,
        "extract": {"strategy": "time", "every_seconds": 0.5},
        "models": {"device": "auto", "batch_size": 4},
        "shard_size": 2,
        "filter": {"enabled": True, "model": str(tiny_models["siglip2"]), "classes": ["a photo of a cat"],
                   "threshold": 0.3},
        "dedup": {"model": str(tiny_models["dinov2"]), "threshold": 0.99},
        "detection": {"enabled": True, "backend": "owlv2", "model": str(tiny_models["owlv2"]), "classes": ["cat"],
                      "threshold": 0.0,
                      # verify (on with the filter by default) is left out to keep this run's time; its
                      # resumability is cached_frame_results', tested in test_box_stages
                      "verify": False},
    }


@pytest.fixture(scope="module")
def slurm_run(cluster, slurm_config, tmp_path_factory):
    """The workflow on SLURM and, at the same time (the SLURM run mostly waits on the
    scheduler), the same config locally on one core."""
    root = tmp_path_factory.mktemp("slurm")
    local = root / "local"
    local_run = subprocess.Popen(snakemake_cmd(local, write_config(local, slurm_config), cores=1), cwd=local,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        code, output = run_on_slurm(root / "slurm", slurm_config)
    finally:
        local_output, _ = local_run.communicate(timeout=420)
    assert local_run.returncode == 0, local_output[-6000:]
    assert code == 0, output[-6000:]
    return root / "slurm", local, started


def test_slurm_run_equals_local_run(slurm_run):
    workdir, local_workdir, started = slurm_run
    slurm, local = comparable_results(workdir), comparable_results(local_workdir)
    assert sorted(slurm) == sorted(local)
    assert [name for name in local if slurm[name] != local[name]] == []
    # Every rule's jobs went through sbatch and completed; model jobs got the GPU.
    accounting = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobName,Comment,State,AllocTRES", "-S", started],
                                capture_output=True, text=True, check=True).stdout
    jobs = [line.split("|") for line in accounting.splitlines() if line.split("|")[1].startswith("rule_")]
    jobs = [(name, comment.split("_wildcards_")[0], state, tres) for name, comment, state, tres in jobs]
    # One job per shard of each per-shard stage (3 videos, shard_size 2: 2 shards), video dedup and
    # the cross-video dedup; aggregation (summary, COCO, plots, dataset) runs on the submit host as local rules.
    shards = 2
    per_shard = ["rule_download", "rule_probe", "rule_extract", "rule_filter", "rule_embed", "rule_detect"]
    assert len(jobs) == len(per_shard) * shards + 2 <= 8 * shards + 2, accounting  # <= enabled stages x shards + few
    assert {comment: sum(c == comment for _, c, _, _ in jobs) for comment in per_shard} == dict.fromkeys(per_shard, 2)
    assert {comment for _, comment, _, _ in jobs} == {*per_shard, "rule_video_dedup", "rule_dedup"}, accounting
    assert all(state == "COMPLETED" for _, _, state, _ in jobs), accounting
    assert {comment for _, comment, _, tres in jobs if "gres/gpu=1" in tres} == {"rule_filter", "rule_embed",
                                                                                 "rule_detect"}


def test_a_failing_job_fails_the_run_instead_of_hanging(slurm_run, slurm_config, tmp_path):
    """The finished SLURM run with a broken filter model: its filter jobs rerun and fail."""
    workdir = tmp_path / "run"
    shutil.copytree(slurm_run[0], workdir, symlinks=True)
    broken_model = tmp_path / "not-a-model"
    broken_model.mkdir()
    config = {**slurm_config, "filter": {**slurm_config["filter"], "model": str(broken_model)}}
    code, output = run_on_slurm(workdir, config, timeout=300)
    assert code != 0
    assert "Error in rule filter" in output
