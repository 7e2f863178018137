"""Kill the workflow anywhere, resume, and get exactly the results of an uninterrupted run."""

import json
import signal
import subprocess

import pytest

from conftest import FAST_DOWNLOADS
from resume_harness import (Interruption, comparable_results, complete_run, interrupted_run, random_plan, rules_run,
                            write_config)

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


def pilot_size(config: dict, fetched: list[str]) -> int:
    """The smallest pilot (max_videos) that holds one of the ``fetched`` videos: the sample
    depends on the ids, so on the loopback server's port."""
    from video_miner.sources import collect_videos, sample_rank

    ranked = sorted(collect_videos(config).videos, key=sample_rank)
    return 1 + min(ranked.index(v) for v in fetched)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, resume_config, http_server):
    """The uninterrupted run, done as the README suggests: a pilot (max_videos) first, then
    the full run over the same inputs, which must take from the pilot's per-video caches
    everything the pilot did (nothing downloaded, probed or extracted again). The
    interrupted runs below start without a pilot, so their comparison with this one also
    shows that a pilot changes no result of the full run."""
    from video_miner.ids import video_id_for_url
    from video_miner.sources import collect_videos

    workdir = tmp_path_factory.mktemp("reference")
    paths = {video_id_for_url(http_server.url(p)): p for p in ("h264.mp4", "vp9.webm")}
    pilot_config = {**resume_config, "max_videos": pilot_size(resume_config, list(paths))}
    complete_run(workdir, write_config(workdir, pilot_config))
    pilot = [v for v in collect_videos(pilot_config).videos if v in paths]
    assert pilot  # a good download in the pilot, by pilot_size
    records = {p: p.stat().st_mtime_ns for p in (workdir / "results" / ".cache").rglob("*.json")}
    done = {p.parent.parent.name for p in records if p.stem in pilot}
    assert {"download", "probe", "extract"} <= done, done
    hits = {v: http_server.hits["/" + paths[v]] for v in pilot}
    complete_run(workdir, write_config(workdir, resume_config))
    assert {v: http_server.hits["/" + paths[v]] for v in pilot} == hits  # not fetched again
    assert {p: p.stat().st_mtime_ns if p.exists() else None for p in records} == records  # nor redone
    for name in ("probe", "extract"):  # the full run's jobs of the pilot's shard said so
        log = next((workdir / "logs" / name).glob("urls-*-00000.log"))
        assert "already done in an earlier run" in log.read_text(), name
    return workdir, comparable_results(workdir)


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run[1]


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
    # The last step's upload can be the run's last job and end within the delay (measured:
    # ~0.2 s for the delay's 0.255 s when the other export jobs finished first): nothing was
    # left to interrupt.
    assert all(outcome.startswith("interrupted") for outcome in outcomes[:-1]), said
    assert outcomes[-1].startswith(("interrupted", "finished despite")), said
    assert outcomes.count("interrupted") >= len(plan) - 3 - outcomes[-1].startswith("finished"), said
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


def mentions(root, video_id: str) -> list[str]:
    """The files under ``root`` that name the video: in their path, their text, a table's
    cells, or a tar's members (names and json)."""
    import tarfile

    import pandas as pd

    from video_miner.fsutil import safe_name

    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if video_id in rel or safe_name(video_id) in rel:
            found.append(rel)
        elif path.suffix == ".parquet":
            if pd.read_parquet(path).astype(str).apply(lambda c: c.str.contains(video_id, regex=False)).any().any():
                found.append(rel)
        elif path.suffix == ".tar":
            with tarfile.open(path) as tar:
                if any(video_id in m.name or (m.name.endswith(".json") and video_id in
                                              tar.extractfile(m).read().decode()) for m in tar.getmembers()):
                    found.append(rel)
        elif path.suffix in (".json", ".jsonl", ".txt", ".yaml", ".csv", ".tsv") and video_id in path.read_text():
            found.append(rel)
    return found


def test_a_takedown_removes_a_videos_items_everywhere_and_reruns_only_the_exports(reference_run, resume_config,
                                                                                    http_server):
    """After the reference run, its first URL goes on the takedown list: the rerun removes
    its items from the dataset, COCO (all and per split), YOLO, the visualisations, the clip
    export and its WebDataset and the upload target, says so in the summary and the status
    table, and runs no job but the split, the exports, the summary and the upload."""
    import pandas as pd

    from video_miner.ids import video_id_for_url

    workdir, _ = reference_run
    url = http_server.url("h264.mp4")
    gone = video_id_for_url(url)
    results = workdir / "results"
    exports = {"dataset": results / "dataset", "coco": results / "detections", "yolo": results / "export" / "yolo",
               "clips": results / "clips", "webdataset": results / "export" / "clips", "upload": workdir / "uploaded"}
    # The summary and status table (uploaded too) name it as taken down, as they should.
    listed = {name: [f for f in mentions(root, gone) if f not in ("pipeline_result.json", "status.tsv")]
              for name, root in exports.items()}
    assert all(listed.values()), listed  # before: in every export
    assert mentions(results / "detections" / "visualizations", gone)
    hits = dict(http_server.hits)
    proc = complete_run(workdir, write_config(workdir, {**resume_config, "takedown": [url]}))
    listed = {name: [f for f in mentions(root, gone) if f not in ("pipeline_result.json", "status.tsv")]
              for name, root in exports.items()}
    assert not any(listed.values()), listed
    assert not mentions(results / "detections" / "visualizations", gone)
    marker = json.loads((results / "upload" / "copy.done").read_text())
    assert marker["removed"] and all(not (workdir / "uploaded" / p).exists() for p in marker["removed"])
    summary = json.loads((results / "pipeline_result.json").read_text())
    assert summary["takedown"]["videos"] == [{"video_id": gone, "reason": f"takedown: URL {url}"}]
    assert summary["takedown"]["frames"] > 0 and summary["takedown"]["clips"] > 0
    status = pd.read_csv(results / "status.tsv", sep="\t").set_index("video_id")
    assert (status.at[gone, "status"], status.at[gone, "reason"]) == ("taken down", f"takedown: URL {url}")
    assert (status["status"] == "taken down").sum() == 1
    assert rules_run(proc) == {"splits", "coco", "yolo", "dataset", "label_studio", "visualize", "clips",
                               "clips_webdataset", "summary", "report_plots", "upload", "run_config", "all"}
    assert dict(http_server.hits) == hits
