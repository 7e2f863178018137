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
from video_miner.extract import extract_images
from video_miner.images import folder_images, image_folders, image_key
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
    Image.new("RGB", (8, 8)).save(os.fsencode(folder) + b"/name\xff.jpg", format="JPEG")  # not UTF-8
    result = extract_images(folder, tmp_path / "out", "images-x", ExtractOptions(max_side=30), IMAGE_EXTS)
    rows = {Path(r["image"]).name: r for r in result.rows}
    assert result.status == "ok" and result.decode_errors == 2 and result.frames_in_video == 4
    assert [r["reason"] for r in result.rows if Path(r["image"]).name.startswith("name")] == [
        "unreadable image: ValueError: file name is not valid UTF-8"]
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
def chain(tmp_path_factory, photos, videos, tiny_models) -> dict[str, Path]:
    """filter -> deduplicate -> detect, each on the former's output, from flags only (the
    detector's tiny checkpoint from a -c file): the first on the image folder and a local
    video."""
    root = tmp_path_factory.mktemp("chain")
    out = {name: root / name for name in ("filtered", "unique", "detected")}
    detector = root / "detector.yaml"
    detector.write_text(yaml.safe_dump({"detection": {"model": str(tiny_models["owlv2"])}}))
    cores = ["--", "--cores", "2", "--quiet"]
    steps = [
        ["filter", "-i", str(photos), "-i", str(videos["h264.mp4"]), "-o", str(out["filtered"]), "-k", "cat",
         "--filter-model", str(tiny_models["siglip2"]), "--threshold", "0", "--sampling", "time",
         "--every-seconds", "1", *cores],
        ["deduplicate", "-i", str(out["filtered"]), "-o", str(out["unique"]), "--dedup-model",
         str(tiny_models["dinov2"]), "--threshold", "0.99", *cores],
        ["detect", "-i", str(out["unique"]), "-o", str(out["detected"]), "-k", "cat", "--detector", "owlv2",
         "-c", str(detector), "--threshold", "0", *cores],
    ]
    for args in steps:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return out


def _outputs(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.suffix != ".parquet"
            and ".video-miner" not in p.parts}


def test_flags_are_recorded_in_the_run_config(chain, photos, videos):
    recorded = yaml.safe_load((chain["filtered"] / ".video-miner" / "results" / "run_config.yaml").read_text())
    assert recorded["local_videos"] == [str(videos["h264.mp4"])] and recorded["local_images"] == [str(photos)]
    assert recorded["extract"]["strategy"] == "time" and recorded["extract"]["every_seconds"] == 1
    assert recorded["filter"]["classes"] == ["a photo of a cat"] and recorded["filter"]["threshold"] == 0
    assert not recorded["dedup"]["enabled"] and not recorded["detection"]["enabled"]


def test_stage_commands_chain_on_an_image_folder(chain, photos):
    """The kept images keep their paths (and so their keys), with each stage's table
    beside them; a video's frames go under its id."""
    filtered, unique, detected = chain["filtered"], chain["unique"], chain["detected"]
    table = pd.read_parquet(filtered / "filter.parquet")
    video_frames = {f for f in table["file"].dropna() if f.startswith("file-")}
    readable = {"astronaut.jpg", "cat.png", "sub/coffee.webp", "sub/rocket.JPG"}
    assert len(video_frames) == 3 and _outputs(filtered) == readable | video_frames and table["kept"].all()
    # the unreadable image is recorded with its reason, in the run's extraction and status
    work = filtered / ".video-miner" / "results"
    extract = pd.concat(pd.read_parquet(p) for p in (work / "extract").glob("*.parquet"))
    bad = extract[~extract["kept"]]
    assert bad["image"].str.endswith("sub/broken.jpg").all() and bad["reason"].str.startswith("unreadable image").all()
    status = pd.read_csv(work / "status.tsv", sep="\t")
    assert sorted(status["decode_errors"]) == [0, 0, 1] and set(status["status"]) == {"complete"}
    assert sorted(status["source"]) == ["images", "images", "local"]
    # keys survive the chain: the same image has the same frame_index in every table
    keys = {t: dict(zip(pd.read_parquet(d / f"{t}.parquet")["file"], pd.read_parquet(d / f"{t}.parquet")["frame_index"]))
            for t, d in (("filter", filtered), ("dedup", unique), ("detect", detected))}
    later = [(name, index) for t in ("dedup", "detect") for name, index in keys[t].items() if name in readable]
    assert later and all(keys["filter"][name] == index for name, index in later)
    detections = pd.read_parquet(detected / "detect.parquet")
    assert set(detections.loc[detections["has_detections"], "file"]) == _outputs(detected)
    from video_miner import api

    coco = api.load_coco(detected / ".video-miner")
    assert len(coco["images"]) == len(detections) and {c["name"] for c in coco["categories"]} == {"cat"}
    # grouped by folder: the splits keep each folder's images together
    splits = pd.read_parquet(detected / ".video-miner" / "results" / "splits" / "frames.parquet")
    assert splits.groupby("video_id")["split"].nunique().max() == 1 and splits["video_id"].nunique() == 3


def test_api_reruns_a_recorded_config_to_the_same_results_twice_in_one_process(chain, photos, tmp_path):
    from video_miner import api

    recorded = chain["filtered"] / ".video-miner" / "results" / "run_config.yaml"
    cwd, root_handlers = os.getcwd(), list(logging.getLogger().handlers)
    # The run up to its summary (no dataset or report plots): what the comparison needs.
    targets = ["results/run_config.yaml", "results/pipeline_result.json"]
    first = api.run(recorded, tmp_path / "again", cores=2, targets=targets)
    assert first.ok, first.error
    assert os.getcwd() == cwd and logging.getLogger().handlers == root_handlers
    assert (first.videos_total, first.videos_ok, first.frames_extracted, first.frames_decode_errors) == (3, 3, 7, 1)
    assert first.frames_unique is None  # dedup did not run
    assert yaml.safe_load(first.outputs["run_config"].read_text()) == yaml.safe_load(recorded.read_text())

    def frames(workdir):
        table = pd.read_parquet(workdir / "results" / "splits" / "frames.parquet")
        scores = pd.concat(pd.read_parquet(p) for p in (workdir / "results" / "filter").glob("*.parquet"))
        table = table.merge(scores[["frame_id", "score:a photo of a cat"]], on="frame_id")
        return table[["video_id", "frame_index", "timestamp_s", "split", "score:a photo of a cat"]].sort_values(
            ["video_id", "frame_index"]).reset_index(drop=True)

    before = frames(first.workdir)
    pd.testing.assert_frame_equal(before, frames(recorded.parents[1]))
    # An image added to a folder: the rerun takes it in, and no other image's key moves.
    Image.new("RGB", (40, 30), (0, 200, 0)).save(photos / "added.png")
    try:
        second = api.run(recorded, tmp_path / "again", cores=2, targets=targets)
    finally:
        (photos / "added.png").unlink()
    assert second.ok and second.frames_extracted == 8 and os.getcwd() == cwd
    after = frames(second.workdir)
    assert len(after) == 8 and set(map(tuple, before[["video_id", "frame_index"]].values)) < set(
        map(tuple, after[["video_id", "frame_index"]].values))
    assert api.status(tmp_path / "again")["status"].tolist() == ["complete"] * 3
    with pytest.raises(AttributeError, match="frames_extracted"):
        second.frames_extracte


def test_a_kept_image_keeps_its_path_under_its_input_folder_and_a_video_frame_goes_under_its_video(tmp_path):
    from video_miner.stagecommand import output_name

    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert output_name(str(tmp_path / "b" / "x" / "1.png"), "ignored", "images-1", roots) == "x/1.png"
    assert output_name(None, "results/extract/s/file-1/00000030.jpg", "file-1", roots) == "file-1/00000030.jpg"
