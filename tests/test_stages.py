"""The stage registry drives the rules' inputs, the status words and the summary; the
table contract holds for every stage table."""

import re

import pyarrow as pa
import pytest
import yaml

from conftest import REPO, run_workflow
from video_miner.defaults import section_defaults
from video_miner.stages import STAGES, STATUSES, Stage, cross_upstream, final_stage, stage, upstream, video_gate
from video_miner.tables import ContractError
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO


def config(strategy="interval", **enabled):
    return {**{name: {"enabled": enabled.get(name, name in ("dedup", "video_dedup"))}
               for name in ("filter", "dedup", "detection", "video_dedup", "shots", "segment", "flash", "ocr", "motion",
                            "aesthetic")},
            "extract": {"strategy": strategy}}


@pytest.mark.parametrize("switches,reads", [
    ({}, {"probe": "download", "video_dedup": "probe", "extract": "probe", "embed": "extract", "dedup": "embed"}),
    ({"video_dedup": False}, {"extract": "probe"}),
    ({"filter": True}, {"filter": "extract", "embed": "filter"}),
    ({"filter": True, "detection": True}, {"detect": "dedup"}),
    ({"dedup": False, "detection": True}, {"detect": "extract"}),
    ({"dedup": False, "filter": True, "detection": True}, {"detect": "filter"}),
    ({"filter": True, "detection": True, "segment": True}, {"verify": "detect", "segment": "verify"}),
    ({"detection": True, "segment": True}, {"segment": "detect"}),  # verify: on with the filter only
])
def test_each_stage_reads_the_previous_enabled_stage(switches, reads):
    assert {name: upstream(name, config(**switches)).name for name in reads} == reads


def test_the_clip_score_stages_follow_shots_in_order_and_share_one_job():
    """flash, ocr, motion, aesthetic: each reads the kept clips of the enabled clip stage
    before it; one job (rule clip_scores) writes their tables; the cut and the export
    read the last one."""
    on = {**config(shots=True), **{s: {"enabled": True} for s in ("flash", "ocr", "motion", "aesthetic")}}
    assert {s: upstream(s, on).name for s in ("flash", "ocr", "motion", "aesthetic")} == {
        "flash": "shots", "ocr": "flash", "motion": "ocr", "aesthetic": "motion"}
    assert upstream("motion", {**on, "ocr": {"enabled": False}, "flash": {"enabled": False}}).name == "shots"
    assert final_stage("clip", on).name == "aesthetic"
    assert {stage(s).rule for s in ("flash", "ocr", "motion", "aesthetic")} == {"clip_scores"}
    assert stage("ocr").log("s-abcdef-00000") == "logs/clip_scores/s-abcdef-00000.log"
    assert stage("motion").cache("s-abcdef-00000") == "results/.cache/clip_scores/s-abcdef-00000"
    from video_miner.clipscores import RULES, SCORE_STAGES

    assert [s.name for s in STAGES if s.job == "clip_scores"] == list(SCORE_STAGES)
    assert {s: stage(s).score for s in SCORE_STAGES} == {s: RULES[s].column for s in SCORE_STAGES}


def test_extraction_reads_the_clip_level_only_for_strategy_scene():
    """The cross-level read is the registry's: shots reads the probe, extraction reads the
    shots table for strategy scene only, and no frame stage reads clips otherwise."""
    assert upstream("shots", config(shots=True)).name == "probe"
    assert upstream("extract", config("scene", shots=True)).name == "probe"
    assert cross_upstream("extract", "clip", config("scene", shots=True)).name == "shots"
    assert cross_upstream("extract", "clip", config(shots=True)) is None
    assert cross_upstream("embed", "clip", config("scene", shots=True)) is None
    with pytest.raises(ValueError, match="no clip stage is enabled"):
        cross_upstream("extract", "clip", config("scene"))
    assert final_stage("clip", config(shots=True)).name == "shots" and final_stage("clip", config()) is None


def test_captions_and_audio_annotate_the_final_rows_and_are_read_by_no_stage():
    """They decide nothing: the final frames and clips, the video gate and every stage's
    input stay what they were with them off."""
    on = {**config(shots=True, detection=True, segment=True), "captions": {"enabled": True},
          "audio": {"enabled": True}}
    off = config(shots=True, detection=True, segment=True)
    for level in ("video", "clip", "frame"):
        assert final_stage(level, on) == final_stage(level, off)
    assert video_gate(on) == video_gate(off)
    assert [upstream(s.name, on).name for s in STAGES[1:-2]] == [upstream(s.name, off).name for s in STAGES[1:-2]]
    assert upstream("captions", on).name == "segment" and stage("audio").level == "video"


def test_a_new_stage_is_one_registry_entry():
    shots = Stage("blur", "frame", "blur-checked", "sharp frames", "sharp", switch="blur")
    after = [s.name for s in STAGES].index("extract") + 1
    stages = (*STAGES[:after], shots, *STAGES[after:])
    settings = {**config(filter=True), "blur": {"enabled": True}}
    assert upstream("blur", settings, stages).name == "extract"
    assert upstream("filter", settings, stages).name == "blur"  # the next stage now reads it
    assert upstream("filter", {**settings, "blur": {"enabled": False}}, stages).name == "extract"
    assert final_stage("frame", settings, stages).name == "dedup"
    assert final_stage("frame", {**settings, "dedup": {"enabled": False}}, stages).name == "filter"


def test_extraction_never_waits_for_the_run_wide_video_dedup_but_the_model_stages_keep_to_it():
    """Duplicates stay extracted (extraction reads the per-shard probe); the frame stages
    after it and the exports read video_dedup's kept videos."""
    assert video_gate(config()).name == "video_dedup"
    assert video_gate(config(video_dedup=False)) is None
    assert final_stage("video", config()).name == "video_dedup"


def test_status_words_are_one_vocabulary():
    assert STATUSES[0] == "pending" and STATUSES[-4:] == ("complete", "rejected", "failed", "taken down")
    assert list(STATUSES[1:-4]) == [s.status for s in STAGES]
    assert len(set(STATUSES)) == len(STATUSES)
    from video_miner.cli import export, list_videos

    for command in (list_videos, export):
        choice = next(p for p in command.params if p.name == "wanted").type
        assert tuple(choice.choices) == STATUSES


def test_tables_and_switches_follow_the_schema():
    for current in STAGES:
        if current.switch:
            assert "enabled" in section_defaults(current.switch)
        assert re.fullmatch(r"results/[a-z_]+/.+\.parquet", current.table("s-abcdef-00000"))
    assert stage("dedup").table() == "results/dedup/unique_frames.parquet"


def test_the_contract_refuses_a_table_without_kept_and_reason(tmp_path):
    with pytest.raises(ContractError, match="kept"):
        VIDEO.write(tmp_path / "t.parquet", pa.table({"video_id": ["a"]}), {})
    with pytest.raises(ContractError, match="frame_index"):
        FRAME.write(tmp_path / "t.parquet", pa.table({"video_id": ["a"], "kept": [True], "reason": [""]}), {})


def test_read_kept_gives_the_kept_rows_in_key_order(tmp_path):
    rows = [{"video_id": v, "frame_index": i, "frame_id": f"{v}/{i:08d}", "timestamp_s": 0.0, "width": 1,
             "height": 1, "path": "p", "kept": k, "reason": "" if k else "why"}
            for v, i, k in [("b", 2, True), ("a", 5, False), ("a", 1, True), ("b", 0, True)]]
    FRAME.write(tmp_path / "1.parquet", FRAME.table(rows[:2]), {})
    FRAME.write(tmp_path / "2.parquet", FRAME.table(rows[2:]), {})
    kept = FRAME.read_kept([tmp_path / "1.parquet", tmp_path / "2.parquet"])
    assert list(zip(kept["video_id"], kept["frame_index"])) == [("a", 1), ("b", 0), ("b", 2)]
    assert "kept" not in kept and "reason" not in kept
    assert FRAME.read_kept(tmp_path / "1.parquet", videos=["a"]).empty


def test_scripts_take_everything_through_params_and_input():
    for script in sorted((REPO / "scripts").glob("*.py")):
        assert "snakemake.config" not in script.read_text(), f"{script.name} reads snakemake.config"
    for smk in sorted((REPO / "rules").glob("*.smk")):
        assert "lambda" not in smk.read_text(), f"{smk.name} has a lambda"


def test_dry_run_wires_each_rule_to_the_previous_enabled_stage(tmp_path):
    """What Snakemake plans, for the filter on and off: embed's input follows the registry."""
    def planned_inputs(settings):
        proc = run_workflow(tmp_path, {"urls": ["https://example.com/a.mp4"], **settings}, "-n")
        jobs = re.findall(r"rule (\w+):\n(.*?)(?:\n\n|\Z)", proc.stdout, re.S)
        gpus.update({name: re.search(r"\bgpu=(\d+)", body).group(1) for name, body in jobs if "gpu=" in body})
        return {name: re.search(r"input: (.*)", body).group(1) for name, body in jobs if "input:" in body}

    gpus = {}

    plain = planned_inputs({})
    assert re.fullmatch(r"results/extract/urls-[0-9a-f]{6}-00000\.parquet, results/extract/urls-[0-9a-f]{6}-00000, "
                        r"results/video_dedup/videos\.parquet", plain["embed"])
    # Extraction reads its shard's probe (and files), never the run-wide video_dedup table.
    assert re.fullmatch(r"results/probe/(urls-[0-9a-f]{6}-00000)\.parquet, results/download/\1\.parquet, "
                        r"results/download/\1", plain["extract"])
    assert re.fullmatch(r"results/probe/urls-[0-9a-f]{6}-00000\.parquet", plain["video_dedup"])
    # The splits read the last frame stage, the video groups and the cross-video links; the exports read the splits.
    # ... and the download tables (which videos a takedown names).
    assert re.fullmatch(r"results/dedup/unique_frames\.parquet, results/video_dedup/videos\.parquet, "
                        r"results/dedup/unique_frames\.parquet, results/download/urls-[0-9a-f]{6}-00000\.parquet",
                        plain["splits"])
    assert plain["dataset"].startswith("results/splits/frames.parquet, results/extract/urls-")
    filtered = planned_inputs({"filter": {"enabled": True, "classes": ["a cat"]}})
    assert filtered["embed"].startswith("results/filter/urls-")
    assert filtered["filter"].startswith("results/extract/urls-")
    # strategy scene: extraction also reads its shard's clip table
    # (on a GPU: TransNetV2's shots jobs ask for one like the other model stages)
    scenes = planned_inputs({"shots": {"enabled": True}, "extract": {"strategy": "scene"}, "models": {"device": "cuda"}})
    assert gpus["shots"] == "1" and "extract" not in gpus
    assert re.fullmatch(r"results/probe/(urls-[0-9a-f]{6}-00000)\.parquet, results/download/\1\.parquet, "
                        r"results/download/\1, results/shots/\1\.parquet", scenes["extract"])
    assert "shots" not in plain and "clips" not in plain


def test_statuses_follow_the_tables_and_the_cli_reads_the_run_config(tmp_path):
    import os
    import time

    from click.testing import CliRunner

    from video_miner.cli import main
    from video_miner.config import load_config
    from video_miner.registry import video_statuses
    from video_miner.sources import assign_shards, collect_videos

    urls = [f"https://example.com/{name}.mp4" for name in "abc"]
    settings = load_config([], tmp_path) | {"urls": urls, "shard_size": 2}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run_config.yaml").write_text(yaml.safe_dump(settings))
    first, second = assign_shards(collect_videos(settings, str(tmp_path)), 2).items()
    a, b = first[1]
    (c,) = second[1]

    def write(stage_name, level, rows, record=None, fields=()):
        path = tmp_path / stage(stage_name).table(first[0])
        level.write(path, level.table(rows, *fields), record or {})
        return path

    def frame(video_id, i):
        return {"video_id": video_id, "frame_index": i, "frame_id": f"{video_id}/{i:08d}", "timestamp_s": 0.0,
                "width": 1, "height": 1, "path": "p", "kept": True}

    from video_miner.download import DOWNLOAD_FIELDS

    where = {"source": "url", "location": "u"}
    write("download", VIDEO, [{"video_id": a, "kept": True, **where},
                              {"video_id": b, "kept": False, "reason": "HTTP Error 404", **where}], fields=DOWNLOAD_FIELDS)
    write("probe", VIDEO, [{"video_id": a, "kept": True}])
    VIDEO.write(tmp_path / stage("video_dedup").table(), VIDEO.table([{"video_id": a, "kept": True}]), {})
    write("extract", FRAME, [frame(a, 0)], {"video_outcomes": {a: {"ok": True}}})
    statuses = video_statuses(settings, tmp_path).set_index("video_id")
    assert statuses.loc[[a, b, c], "status"].tolist() == ["extracted", "failed", "pending"]
    assert statuses.loc[b, "failed_stage"] == "download" and statuses.loc[b, "reason"] == "HTTP Error 404"
    embedded = write("embed", FRAME, [frame(a, 0)])
    assert video_statuses(settings, tmp_path).set_index("video_id").loc[a, "status"] == "embedded"
    dedup = tmp_path / stage("dedup").table()
    FRAME.write(dedup, FRAME.table([frame(a, 0)]), {})
    later = time.time() + 5
    os.utime(dedup, (later, later))  # the cross-video step ran after this shard's embedding
    assert video_statuses(settings, tmp_path).set_index("video_id").loc[a, "status"] == "complete"
    taken = tmp_path / "results" / "splits" / "frames.parquet"  # the split job recorded a takedown
    FRAME.write(taken, FRAME.table([]), {"takedown": {"videos": {a: "takedown: video id x", b: "takedown: y"}}})
    assert video_statuses(settings, tmp_path).set_index("video_id").loc[[a, b], ["status", "reason"]].values.tolist() \
        == [["taken down", "takedown: video id x"], ["failed", "HTTP Error 404"]]  # a failed video stays failed
    taken.unlink()
    os.utime(embedded, (later + 5, later + 5))  # re-embedded since: the cross-video step is due again
    assert video_statuses(settings, tmp_path).set_index("video_id").loc[a, "status"] == "embedded"
    grown = {**settings, "shard_size": 3}  # c joins the first shard, whose tables predate it
    assert video_statuses(grown, tmp_path).set_index("video_id").loc[[a, c], "status"].tolist() == ["embedded",
                                                                                                  "pending"]
    os.utime(tmp_path / stage("download").table(first[0]), (later + 9, later + 9))  # downloaded again
    assert video_statuses(settings, tmp_path).set_index("video_id").loc[a, "status"] == "downloaded"

    # No -c: the CLI reports on the configuration the run recorded.
    listed = CliRunner().invoke(main, ["list", "-d", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert [line.split("\t")[:2] for line in listed.output.splitlines()] == [[a, "downloaded"], [b, "failed"],
                                                                            [c, "pending"]]
    status = CliRunner().invoke(main, ["status", "-d", str(tmp_path)])
    assert "3 videos" in status.output and "detected" not in status.output  # detection was off


def test_a_run_wide_table_is_read_one_shard_at_a_time(tmp_path):
    rows = [{"video_id": v, "frame_index": 0, "frame_id": f"{v}/00000000", "timestamp_s": 0.0, "width": 1,
             "height": 1, "path": "p", "kept": True, "shard": s} for v, s in [("a", "s1"), ("b", "s2"), ("c", "s1")]]
    FRAME.write(tmp_path / "run.parquet", FRAME.table(rows, pa.field("shard", pa.string())), {})
    assert FRAME.read_kept(tmp_path / "run.parquet", shard="s1")["video_id"].tolist() == ["a", "c"]
    assert len(FRAME.read_kept(tmp_path / "run.parquet")) == 3


def test_each_stage_rule_writes_where_the_registry_says():
    """Rules spell their paths out (Snakemake catalog style); the registry must agree."""
    for current in STAGES:
        rule = (REPO / "rules" / f"{current.rule}.smk").read_text()
        rule = rule[rule.index(f"rule {current.rule}:"):]
        output = rule.split("output:", 1)[1].split("log:", 1)[0]
        if current.job:  # several stages' tables from one job: its outputs are the registry's tables
            assert "**SCORE_OUTPUTS" in output, current.name
        else:
            assert f'"{current.table()}"' in output, current.name
        assert f'"{current.log()}"' in rule.split("log:", 1)[1].split(":", 1)[0], current.name
        if current.per_shard and "directory(" in output:
            assert f'"{current.files()}"' in output, current.name
