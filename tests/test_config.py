import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, run_workflow
from video_miner.config import ConfigValidationError, check_config

SCHEMA = REPO / "config" / "schema.yaml"


def defaults():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_defaults_live_only_in_the_schema():
    """config/config.yaml lists the inputs to fill in, nothing the schema already sets."""
    assert set(defaults()) == {"urls", "url_files", "local_videos", "local_images"}
    assert all(value == [] for value in defaults().values())


def test_library_defaults_are_the_schema_defaults():
    from dataclasses import fields

    from video_miner.defaults import section_defaults
    from video_miner.download import DownloadOptions
    from video_miner.extract import ExtractOptions
    from video_miner.probe import ProbeFilters
    from video_miner.search import SearchOptions
    from video_miner.videodedup import VideoDedupSettings

    for options, section in ((DownloadOptions, ("download",)), (ExtractOptions, ("extract",)),
                             (SearchOptions, ("search",)), (ProbeFilters, ("probe", "filters")),
                             (VideoDedupSettings, ("video_dedup",))):
        schema = section_defaults(*section)
        if options is ProbeFilters:
            schema = {**schema, "codecs": tuple(schema["codecs"])}
        shared = [f for f in fields(options) if f.name in schema]
        assert shared and all(f.default == schema[f.name] for f in shared), options


def test_shipped_configs_are_valid():
    check_config(defaults(), SCHEMA)
    check_config({**defaults(), **yaml.safe_load((REPO / "config" / "demo.yaml").read_text())}, SCHEMA)


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"urlz": []}, "unknown key 'urlz' (did you mean 'urls'?)"),
        ({"extract": {"strategi": "time"}}, "extract: unknown key 'strategi' (did you mean 'strategy'?)"),
        ({"extract": {"every_n_frames": "ten"}}, "extract.every_n_frames: 'ten' is not of type 'integer'"),
        ({"extract": {"strategy": "shots"}}, "extract.strategy: 'shots' is not one of"),
        ({"extract": {"quality": 0}}, "extract.quality: 0 is less than the minimum of 1"),
        ({"download": {"retries": -1}}, "download.retries: -1 is less than the minimum of 0"),
        ({"download": {"rate_limit": "fast"}}, "download.rate_limit: 'fast' is not valid"),
        ({"urls": "https://example.com/a.mp4"}, "urls: 'https://example.com/a.mp4' is not of type 'array'"),
        ({"urls": [42]}, "urls[0]: 42 is not of type 'string'"),
        ({"upload": {"s3": {"url": "s3://b/p", "workers": 0}}}, "upload.s3.workers: 0 is less than the minimum of 1"),
        ({"upload": {"s3": {"url": "s3://b/p", "verfy": "size"}}},
         "upload.s3: unknown key 'verfy' (did you mean 'verify'?)"),
    ],
)
def test_each_bad_value_is_named_by_its_key(change, expected):
    config = defaults()
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) and key in config else value
    with pytest.raises(ConfigValidationError) as info:
        check_config(config, SCHEMA)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once():
    config = {**defaults(), "urlz": [], "extract": {"quality": 500, "every_seconds": 0}}
    with pytest.raises(ConfigValidationError, match=r"3 problem\(s\)"):
        check_config(config, SCHEMA)


def test_bad_config_stops_the_workflow_before_any_job(tmp_path):
    proc = run_workflow(tmp_path, {"urls": ["https://example.com/a.mp4"], "extract": {"every_n_frames": 0}},
                        check=False)
    assert proc.returncode != 0
    assert "extract.every_n_frames: 0 is less than the minimum of 1" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_inputs_stop_the_workflow_with_their_names(tmp_path):
    proc = run_workflow(tmp_path, {"url_files": ["lists/none.txt"], "local_videos": ["no/folder"]}, "-n", check=False)
    assert proc.returncode != 0 and "url_files: cannot read 'lists/none.txt'" in proc.stdout + proc.stderr
    assert "local_videos: 'no/folder' is neither a folder" in proc.stdout + proc.stderr  # in the same report


def test_defaults_are_filled_for_omitted_sections(tmp_path):
    proc = run_workflow(tmp_path, {"urls": ["https://example.com/a.mp4"]}, "-n", "--printshellcmds", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "download" in proc.stdout and "extract" in proc.stdout


def test_lint_and_format_are_clean():
    lint = subprocess.run([*SNAKEMAKE, "--lint", "--configfile", "config/demo.yaml"], cwd=REPO,
                          capture_output=True, text=True)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    snakefmt = Path(sys.executable).with_name("snakefmt")
    fmt = subprocess.run([str(snakefmt), "--check", "Snakefile", "rules/"], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"filter": {"threshold": 1.5}}, "filter.threshold: 1.5 is greater than the maximum of 1"),
        ({"dedup": {"threshold": -0.1}}, "dedup.threshold: -0.1 is less than the minimum of 0"),
        ({"filter": {"enabled": True, "classes": []}}, "filter.classes: [] should be non-empty"),
        ({"filter": {"enabled": True}}, "'classes' is a required property (expected: at least one text prompt"),
        ({"filter": {"enabled": True, "classes": ["a cat"], "class_thresholds": {"a dog": 0.2}}},
         "filter.class_thresholds: 'a dog' is not one of filter.classes"),
        ({"dedup": {"model": "checkpoints/dinov2/base"}},
         "dedup.model: 'checkpoints/dinov2/base' is not an existing folder, nor a Hugging Face id"),
        ({"filter": {"enabled": True, "classes": ["a cat"], "model": "/no/such/siglip2"}},
         "filter.model: '/no/such/siglip2' is not an existing folder"),
        ({"models": {"device": "gpu0"}}, "models.device: 'gpu0' does not match"),
        ({"probe": {"filters": {"require_audio": True}}},
         "probe.filters.require_audio: downloads are video-only unless download.audio is true"),
        ({"probe": {"filters": {"min_heigth": 720}}},
         "probe.filters: unknown key 'min_heigth' (did you mean 'min_height'?)"),
        ({"video_dedup": {"max_distance": 65}}, "video_dedup.max_distance: 65 is greater than the maximum of 32"),
        ({"extract": {"strategy": "scene"}}, "extract.strategy: scene takes frames of each shot, so it needs shots.enabled"),
        ({"clips": {"cut": True}}, "clips.cut: needs shots.enabled: true"),
        ({"shots": {"enabled": True}, "clips": {"webdataset": True}},
         "clips.webdataset: the tars hold each clip's mp4, so it needs clips.cut: true"),
        ({"ocr": {"enabled": True}}, "ocr.enabled: scores clips, so it needs shots.enabled: true"),
        ({"shots": {"enabled": True}, "calibration": {"enabled": True}},
         "calibration.enabled: scores clips with the enabled score stages, but none of flash, ocr, motion"),
        ({"shots": {"enabled": True}, "aesthetic": {"enabled": True}},
         "aesthetic.head: the LAION aesthetic head is not on the model hub with the CLIP model: download "
         "sac+logos+ava1-l14-linearMSE.pth"),
        ({"shots": {"enabled": True}, "aesthetic": {"enabled": True, "head": "/no/such/head.pth"}},
         "aesthetic.head: '/no/such/head.pth' is not a file"),
        ({"motion": {"backend": "raft"}}, "motion.backend: 'raft' is not one of ['motion_vectors', 'dis']"),
        ({"audio": {"enabled": True}}, "audio.enabled: downloads are video-only unless download.audio is true"),
        ({"captions": {"enabled": True, "backend": "florence2", "florence2": {"model": "./no/such/model"}}},
         "captions.florence2.model: './no/such/model' is not an existing folder"),
        ({"captions": {"targets": []}}, "captions.targets"),
        ({"captions": {"api": {"key_env": "my key"}}}, "captions.api.key_env"),
    ],
)
def test_model_stage_settings_are_checked(change, expected):
    config = defaults()
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value}
    with pytest.raises(ConfigValidationError) as info:
        check_config(config, SCHEMA)
    assert expected in str(info.value)


def test_require_audio_is_accepted_with_audio_downloads():
    config = {**defaults(), "probe": {"filters": {"require_audio": True}}, "download": {"audio": True},
              "audio": {"enabled": True, "model": "resources/models/whisper"}}
    check_config(config, SCHEMA)


def test_hub_ids_and_buildable_demo_models_are_accepted():
    config = defaults()
    config["filter"] = {"enabled": True, "classes": ["a cat"], "model": "resources/models/siglip2"}
    config["dedup"] = {"model": "facebook/dinov2-large"}
    check_config(config, SCHEMA)


def test_the_recorded_config_carries_no_secrets():
    from video_miner.registry import redacted

    config = {"download": {"proxy": "http://alice:s3cret@proxy.example:3128", "cookies_file": "c.txt"},
              "upload": {"bucket": {"url": "s3://bob:pw@bucket/p", "token_env": "MY_TOKEN",
                                    "storage_options": {"key": "AKIA", "secret": "xyz", "endpoint_url": "http://s3"}}},
              "urls": ["https://example.com/a.mp4"]}
    clean = redacted(config)
    assert "s3cret" not in str(clean) and "AKIA" not in str(clean) and "xyz" not in str(clean) and ":pw@" not in str(clean)
    assert clean["download"]["proxy"] == "http://proxy.example:3128"
    assert clean["upload"]["bucket"]["token_env"] == "MY_TOKEN"  # the variable's name, not a secret
    assert clean["upload"]["bucket"]["storage_options"]["endpoint_url"] == "http://s3"
    assert clean["urls"] == config["urls"]


def test_missing_lists_and_folders_are_reported_with_the_schema_problems(tmp_path):
    config = {**defaults(), "urlz": [], "url_files": ["a.txt", "b.txt"], "local_videos": ["clips/", "x.mp4"]}
    with pytest.raises(ConfigValidationError) as info:
        check_config(config, SCHEMA, root=tmp_path)
    lines = str(info.value).splitlines()
    assert lines[:2] == ["Invalid configuration (4 problem(s)):", lines[1]] and "unknown key 'urlz'" in lines[1]
    assert lines[2:4] == ["  - url_files: cannot read 'a.txt': No such file or directory",
                          "  - url_files: cannot read 'b.txt': No such file or directory"]
    assert lines[4].startswith("  - local_videos: 'clips/' is neither a folder nor a video file (.3gp, .avi")
    assert len(lines) == 5  # x.mp4 may be made by a rule


@pytest.mark.parametrize(
    "text,expected",
    [
        ("urls:\n  - a\nextract:\n  strategy: time\n  every: 2: 3\n", ":5:11: mapping values are not allowed here"),
        ('urls: ["a"\n', ":2:1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at 1:7)"),
        ("extract:\n\tstrategy: time\n", ":2:1: found character '\\t' that cannot start any token"),
        ("title: \x1b[31m\n", ":1:8: unacceptable character #x001b: special characters are not allowed"),
        ("- a\n- b\n", ": expected settings (key: value) at the top level, found a list"),
    ],
)
def test_an_unreadable_config_file_is_one_line_naming_file_line_and_column(tmp_path, text, expected):
    from video_miner.config import load_config

    path = tmp_path / "my.yaml"
    path.write_text(text)
    with pytest.raises(ConfigValidationError) as info:
        load_config([path], tmp_path)
    assert str(info.value) == f"{path}{expected}"


def test_the_cli_reports_a_yaml_error_before_running_snakemake(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from video_miner import cli

    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: pytest.fail("snakemake ran"))
    (tmp_path / "my.yaml").write_text("urls:\n  - a\n bad: 1\n")
    for command in ("run", "validate-config"):
        result = CliRunner().invoke(cli.main, [command, "-c", str(tmp_path / "my.yaml"), "-d", str(tmp_path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip().splitlines() == [(
            f"Error: {tmp_path / 'my.yaml'}:3:2: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block mapping at 1:1)")]
