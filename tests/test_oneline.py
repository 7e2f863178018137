"""One-line runs: flags instead of YAML, image folders as input, the stage commands that
chain on image folders, and the Python API (two runs in one process, a recorded config
rerun to the same results)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from video_miner.cli import main
from video_miner.config import load_config
from video_miner.extract import ExtractOptions
from video_miner.flags import flags_config, name_flags, stage_switches
from video_miner.images import extract_images, folder_images, image_folders, image_key
from video_miner.sources import collect_videos
from video_miner.stages import enabled_stages

VIDEO_EXTS = [".mp4", ".webm"]
IMAGE_EXTS = [".jpg", ".jpeg", ".png", ".webp"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of real photos in three formats, a subfolder, an unreadable image, a
    hidden folder and a file that is no image."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    (root / ".hidden").mkdir()
    Image.fromarray(data.astronaut()).resize((96, 96)).save(root / "astronaut.jpg")
    Image.fromarray(data.chelsea()).resize((90, 60)).save(root / "cat.png")
    Image.fromarray(data.coffee()).resize((80, 60)).save(root / "sub" / "coffee.webp")
    Image.fromarray(data.rocket()).resize((60, 80)).save(root / "sub" / "rocket.JPG")
    Image.fromarray(data.rocket()).save(root / ".hidden" / "ignored.jpg")
    (root / "sub" / "broken.jpg").write_bytes(b"not an image")
    (root / "notes.txt").write_text("not an image")
    return root


# --- pure parts --------------------------------------------------------------------------


def test_class_flags_set_prompts_and_detection_classes_and_turn_both_on():
    config, problems = flags_config({"--class": ("glass door", "sliding door"), "--filter-threshold": 0.2},
                                    VIDEO_EXTS, IMAGE_EXTS)
    assert problems == []
    assert config["filter"] == {"classes": ["a photo of a glass door", "a photo of a sliding door"], "enabled": True,
                                "threshold": 0.2}
    assert config["detection"] == {"classes": ["glass door", "sliding door"], "enabled": True}
    apart, _ = flags_config({"--class": ("door",), "--filter-prompt": ("a door in a house",),
                             "--detect-class": ("handle",)}, VIDEO_EXTS, IMAGE_EXTS)
    assert apart["filter"]["classes"] == ["a door in a house"] and apart["detection"]["classes"] == ["handle"]


def test_stages_flag_turns_on_exactly_the_named_stages():
    base = load_config([])
    for names, expected in ((["filter"], ["download", "probe", "extract", "filter"]),
                            (["embed", "dedup"], ["download", "probe", "extract", "embed", "dedup"]),
                            (["detect"], ["download", "probe", "extract", "detect"]),
                            (["filter", "detect", "verify"], ["download", "probe", "extract", "filter", "detect",
                                                              "verify"])):
        switches = stage_switches(names)
        config = {**base, **{k: {**base[k], **v} for k, v in switches.items()}}
        assert [s.name for s in enabled_stages(config)] == expected, names
    with pytest.raises(ValueError, match="--stages: unknown stage.*filtre"):
        stage_switches(["filtre"])


def test_a_rejected_value_is_named_by_its_flag():
    flags = {"extract": {"strategy": "sideways"}}
    message = "Invalid configuration (1 problem(s)):\n  - extract.strategy: 'sideways' is not one of [...]"
    assert "--sampling (extract.strategy): 'sideways'" in name_flags(message, flags)
    assert name_flags(message, {}) == message  # set by a -c file: the key is the name


def test_input_flag_sorts_files_video_folders_and_image_folders(photos, videos, tmp_path):
    (tmp_path / "empty").mkdir()
    config, problems = flags_config({"--input": (str(videos["h264.mp4"]), str(photos), str(tmp_path / "empty"))},
                                    VIDEO_EXTS, IMAGE_EXTS)
    assert config == {"local_videos": [str(videos["h264.mp4"])], "local_images": [str(photos)]}
    assert len(problems) == 1 and "empty: no videos" in problems[0]


def test_each_folder_holding_images_is_one_input_and_hidden_ones_are_none(photos):
    assert image_folders(photos, IMAGE_EXTS) == [photos, photos / "sub"]
    assert folder_images(photos / "sub", IMAGE_EXTS) == ["broken.jpg", "coffee.webp", "rocket.JPG"]
    collection = collect_videos({"local_images": [str(photos)], "image_extensions": IMAGE_EXTS})
    kinds = {s.location.rsplit("/", 1)[-1]: (s.kind, s.video_id.split("-")[0]) for s in collection.videos.values()}
    assert kinds == {photos.name: ("images", "images"), "sub": ("images", "images")}


def test_images_become_upright_rgb_frames_keyed_by_name_and_unreadable_ones_keep_their_reason(photos, tmp_path):
    # An EXIF-rotated RGBA image: upright, transparency over white.
    rotated = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    folder = tmp_path / "in"
    folder.mkdir()
    rotated.convert("RGB").save(folder / "turned.jpg", exif=exif)
    rotated.save(folder / "clear.png")
    (folder / "bad.png").write_bytes(b"\x89PNG broken")
    result = extract_images(folder, tmp_path / "out", "images-x", ExtractOptions(max_side=30), IMAGE_EXTS)
    rows = {Path(r["image"]).name: r for r in result.rows}
    assert result.status == "ok" and result.decode_errors == 1 and result.frames_in_video == 3
    assert (rows["turned.jpg"]["width"], rows["turned.jpg"]["height"]) == (15, 30)
    assert Image.open(rows["clear.png"]["path"]).convert("RGB").getpixel((5, 5)) == (255, 255, 255)
    assert rows["bad.png"]["kept"] is False and rows["bad.png"]["reason"].startswith("unreadable image")
    assert rows["clear.png"]["frame_index"] == image_key("clear.png")  # the name's hash: adding images moves none
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"")
    failed = extract_images(broken, tmp_path / "out2", "images-y", ExtractOptions(), IMAGE_EXTS)
    assert failed.status == "failed" and failed.reason == "no readable images" and len(failed.rows) == 1


# --- the command line, no workflow run ----------------------------------------------------


def test_no_input_at_all_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["run", "-o", str(tmp_path / "w"), "-k", "cat"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: no input: give videos or images with -i PATH, URLs with -u URL or -f FILE, or a config file (-c) "
        "that lists some"]


def test_a_bad_flag_value_names_the_flag(tmp_path, videos):
    result = CliRunner().invoke(main, ["run", "-i", str(videos["h264.mp4"]), "-o", str(tmp_path),
                                       "--sampling", "sideways", "--filter-threshold", "0.3"])
    assert result.exit_code != 0
    assert "--sampling (extract.strategy): 'sideways' is not one of" in result.output
    assert "threshold" not in result.output  # a good value is not mentioned
    bad_stage = CliRunner().invoke(main, ["run", "-i", str(videos["h264.mp4"]), "-o", str(tmp_path),
                                          "--stages", "filter,detcet"])
    assert "--stages: unknown stage(s) detcet" in bad_stage.output


# --- workflow runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flag_run(tmp_path_factory, videos):
    """``video-miner run`` on one local video with flags only: no YAML file."""
    workdir = tmp_path_factory.mktemp("flags")
    result = CliRunner().invoke(main, ["run", "-i", str(videos["h264.mp4"]), "-o", str(workdir),
                                       "--sampling", "time", "--every-seconds", "1", "--stages", "extract",
                                       "--", "--cores", "2", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return workdir


def test_flags_only_run_records_its_flags_in_the_run_config(flag_run, videos):
    recorded = yaml.safe_load((flag_run / "results" / "run_config.yaml").read_text())
    assert recorded["local_videos"] == [str(videos["h264.mp4"])]
    assert recorded["extract"]["strategy"] == "time" and recorded["extract"]["every_seconds"] == 1
    assert not recorded["dedup"]["enabled"] and not recorded["filter"]["enabled"]
    status = pd.read_csv(flag_run / "results" / "status.tsv", sep="\t")
    assert status["status"].tolist() == ["complete"] and status["frames_extracted"].tolist() == [3]


def test_api_reruns_a_recorded_config_to_the_same_results_twice_in_one_process(flag_run, tmp_path):
    from video_miner import api

    cwd, root_handlers = os.getcwd(), list(logging.getLogger().handlers)
    first = api.run(flag_run / "results" / "run_config.yaml", tmp_path / "again", cores=2)
    assert first.ok, first.error
    assert os.getcwd() == cwd and logging.getLogger().handlers == root_handlers
    assert (first.videos_total, first.videos_ok, first.frames_extracted) == (1, 1, 3)
    assert first.frames_passed_filter is None  # the filter did not run
    assert yaml.safe_load(first.outputs["run_config"].read_text()) == yaml.safe_load(
        (flag_run / "results" / "run_config.yaml").read_text())

    def frames(workdir):
        table = pd.read_parquet(workdir / "results" / "splits" / "frames.parquet")
        return table[["video_id", "frame_index", "timestamp_s", "split"]].reset_index(drop=True)

    pd.testing.assert_frame_equal(frames(first.workdir), frames(flag_run))
    second = api.run(flag_run / "results" / "run_config.yaml", tmp_path / "again", cores=2)  # nothing left to do
    assert second.ok and second.frames_extracted == 3 and os.getcwd() == cwd
    assert api.status(tmp_path / "again")["status"].tolist() == ["complete"]
    with pytest.raises(AttributeError, match="frames_extracted"):
        second.frames_extracte


def test_stage_commands_chain_on_an_image_folder(photos, tmp_path, tiny_models):
    """filter -> deduplicate -> detect, each on the former's output: the kept images keep
    their paths (and so their keys), with each stage's table beside them."""
    runner = CliRunner()
    cores = ["--", "--cores", "2", "--quiet"]
    filtered, unique, detected = tmp_path / "filtered", tmp_path / "unique", tmp_path / "detected"
    steps = [
        ["filter", "-i", str(photos), "-o", str(filtered), "-k", "cat", "--filter-model", str(tiny_models["siglip2"]),
         "--threshold", "0", *cores],
        ["deduplicate", "-i", str(filtered), "-o", str(unique), "--dedup-model", str(tiny_models["dinov2"]),
         "--threshold", "0.99", *cores],
    ]
    detector = tmp_path / "detector.yaml"
    detector.write_text(yaml.safe_dump({"detection": {"model": str(tiny_models["owlv2"])}}))
    steps.append(["detect", "-i", str(unique), "-o", str(detected), "-k", "cat", "--detector", "owlv2",
                  "-c", str(detector), "--threshold", "0", *cores])
    for args in steps:
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    readable = {"astronaut.jpg", "cat.png", "sub/coffee.webp", "sub/rocket.JPG"}
    assert {p.relative_to(filtered).as_posix() for p in filtered.rglob("*") if p.is_file()
            and ".video-miner" not in p.parts} == readable | {"filter.parquet"}
    table = pd.read_parquet(filtered / "filter.parquet")
    assert set(table["file"].dropna()) == readable and table["kept"].all()
    # the unreadable image is recorded with its reason, in the run's extraction and status
    extract = pd.concat(pd.read_parquet(p) for p in (filtered / ".video-miner" / "results" / "extract").glob("*.parquet"))
    bad = extract[~extract["kept"]]
    assert bad["image"].str.endswith("sub/broken.jpg").all() and bad["reason"].str.startswith("unreadable image").all()
    status = pd.read_csv(filtered / ".video-miner" / "results" / "status.tsv", sep="\t")
    assert sorted(status["decode_errors"]) == [0, 1] and set(status["source"]) == {"images"}
    # keys survive the chain: the same image has the same frame_index in every table
    keys = {t: dict(zip(pd.read_parquet(d / f"{t}.parquet")["file"], pd.read_parquet(d / f"{t}.parquet")["frame_index"]))
            for t, d in (("filter", filtered), ("dedup", unique), ("detect", detected))}
    for name, index in keys["dedup"].items():
        if name:
            assert keys["filter"][name] == index
    detections = pd.read_parquet(detected / "detect.parquet")
    assert set(detections.loc[detections["has_detections"], "file"]) == {
        p.relative_to(detected).as_posix() for p in detected.rglob("*") if p.suffix != ".parquet" and p.is_file()
        and ".video-miner" not in p.parts}
    from video_miner import api

    coco = api.load_coco(detected / ".video-miner")
    assert len(coco["images"]) == len(detections) and {c["name"] for c in coco["categories"]} == {"cat"}
    # grouped by folder: the splits keep each folder's images together
    splits = pd.read_parquet(detected / ".video-miner" / "results" / "splits" / "frames.parquet")
    assert splits.groupby("video_id")["split"].nunique().max() == 1
