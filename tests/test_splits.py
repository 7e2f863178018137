"""Splits by video groups, the caps, and the exports they feed (COCO per split, YOLO, the
imagefolder with split folders, Label Studio), on tables and tiny images made here."""

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO
from export_checks import check_yolo
from video_miner.config import ConfigValidationError, check_config
from video_miner.export import build_coco, coco_split, write_dataset
from video_miner.ids import frame_id, video_id_for_path
from video_miner.labelstudio import labeling_config, rectangle, task, write_label_studio
from video_miner.splits import (
    NO_BOXES,
    SplitSettings,
    active_splits,
    assign_splits,
    cap_per_class,
    cap_per_video,
    describe,
    full_ratios,
    group_keys,
    make_splits,
    ratio_problems,
    read_report,
    split_for,
    split_frames,
    split_report,
    video_splits,
    write_split_tables,
)
from video_miner.yolo import data_yaml, label_lines, write_yolo, yolo_box

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def random_ids(count, seed=0):
    rng = random.Random(seed)
    return [f"url-{rng.getrandbits(64):016x}" for _ in range(count)]


def components(videos, links):
    """Connected groups by a plain graph search, to check the union-find against."""
    neighbours = {v: set() for v in videos}
    for a, b in links:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    seen, groups = set(), []
    for start in sorted(neighbours):
        if start in seen:
            continue
        stack, group = [start], set()
        while stack:
            v = stack.pop()
            if v not in group:
                group.add(v)
                stack.extend(neighbours[v] - group)
        seen |= group
        groups.append(group)
    return groups


# --- assignment ---------------------------------------------------------------------------


def test_groups_are_the_linked_videos_and_never_straddle_splits():
    videos = random_ids(400)
    rng = random.Random(1)
    links = [(rng.choice(videos), rng.choice(videos)) for _ in range(150)]
    table = assign_splits(videos, links, RATIOS, seed=0)
    assert sorted(table["video_id"]) == sorted(videos)
    keys = dict(zip(table["video_id"], table["group"]))
    for group in components(videos, links):
        assert {keys[v] for v in group} == {min(group)}  # the key is the smallest id
    assert table.groupby("group")["split"].nunique().max() == 1


def test_assignment_is_deterministic_and_independent_of_listing_order():
    videos = random_ids(300)
    links = [(videos[i], videos[i + 1]) for i in range(0, 60, 3)]
    first = assign_splits(videos, links, RATIOS, seed=7)
    shuffled_videos, shuffled_links = videos[::-1], [(b, a) for a, b in reversed(links)]
    random.Random(3).shuffle(shuffled_videos)
    pd.testing.assert_frame_equal(first, assign_splits(shuffled_videos, shuffled_links, RATIOS, seed=7))
    assert split_for("file-0123", RATIOS, 7) == split_for("file-0123", dict(reversed(RATIOS.items())), 7)
    assert not first.equals(assign_splits(videos, links, RATIOS, seed=8))  # the seed draws another assignment


def test_adding_videos_moves_no_existing_video_unless_groups_merge():
    videos = random_ids(500)
    links = [(videos[i], videos[i + 1]) for i in range(0, 100, 2)]
    before = assign_splits(videos, links, RATIOS, 0).set_index("video_id")["split"]
    # unrelated new videos, and a new copy of an existing video whose id is larger than its group's key
    new = random_ids(200, seed=99)
    group = sorted(videos[:2])
    later_copy = group[0] + "z"
    after = assign_splits(videos + new + [later_copy], links + [(later_copy, group[1])], RATIOS, 0)
    after = after.set_index("video_id")["split"]
    assert after[videos].equals(before[videos])
    assert after[later_copy] == before[group[0]]
    # a merge: the merged group takes the split of the smaller key; only the other group's videos may move
    pairs = [(videos[i], videos[i + 1]) for i in range(0, 100, 2)]
    first, second = next((p, q) for p in pairs for q in pairs if before[p[0]] != before[q[0]])
    merged = assign_splits(videos, links + [(first[1], second[0])], RATIOS, 0).set_index("video_id")["split"]
    keeper, mover = (first, second) if min(first) < min(second) else (second, first)
    assert (merged[list(keeper)] == before[keeper[0]]).all() and (merged[list(mover)] == before[keeper[0]]).all()
    assert set(merged.index[merged != before]) == set(mover)


def test_shares_approach_the_ratios_with_many_groups_and_a_zero_split_gets_nothing():
    keys = random_ids(20000)
    counts = pd.Series([split_for(k, RATIOS, 0) for k in keys]).value_counts(normalize=True)
    assert counts["train"] == pytest.approx(0.8, abs=0.01) and counts["val"] == pytest.approx(0.1, abs=0.01)
    no_test = {"train": 0.9, "val": 0.1}
    assert {split_for(k, no_test, 0) for k in keys[:2000]} == {"train", "val"}
    assert active_splits(no_test) == ["train", "val"] and full_ratios(no_test)["test"] == 0.0


def test_group_keys_of_a_chain_are_its_smallest_id():
    assert group_keys(["c", "d", "e"], [("e", "d"), ("d", "b"), ("x", "y")]) == {
        "b": "b", "c": "c", "d": "b", "e": "b", "x": "x", "y": "x"}


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("ratios,expected", [
    ({"train": 0.9, "val": 0.2}, "splits.ratios: the shares (train 0.9, val 0.2) sum to 1.1; they must sum to 1"),
    ({"train": 0.5, "dev": 0.5}, "splits.ratios: unknown split 'dev'"),
    ({"train": -0.2, "val": 1.2}, "splits.ratios.train: -0.2 is not a share between 0 and 1"),
    ({"train": "most"}, "splits.ratios.train: 'most' is not a share"),
    ({"train": 0, "val": 0}, "sum to 0"),
])
def test_bad_ratios_are_named(ratios, expected):
    assert any(expected in p for p in ratio_problems(ratios))
    with pytest.raises(ValueError, match="splits.ratios"):
        SplitSettings(ratios=ratios)


def test_the_config_check_names_bad_split_settings():
    base = {"urls": [], "url_files": [], "local_videos": []}
    schema = REPO / "config" / "schema.yaml"
    for change, expected in (
        ({"ratios": {"train": 0.7, "val": 0.2}}, "splits.ratios: the shares (train 0.7, val 0.2) sum to 0.9"),
        ({"ratios": {"train": -0.1, "val": 1.1}}, "splits.ratios.train: -0.1 is less than the minimum of 0"),
        ({"ratios": {"valid": 1}}, "splits.ratios: unknown key 'valid' (did you mean 'val'?)"),
        ({"max_frames_per_class": 10}, "splits.max_frames_per_class: classes come from the boxes, so it needs "
                                       "detection.enabled true"),
        ({"max_frames_per_video": 0}, "splits.max_frames_per_video: 0 is less than the minimum of 1"),
    ):
        with pytest.raises(ConfigValidationError) as info:
            check_config({**base, "splits": change}, schema)
        assert expected in str(info.value)
    check_config({**base, "splits": {"ratios": {"train": 0.9, "val": 0.1}, "seed": 3}}, schema)
    assert SplitSettings().ratios == RATIOS  # the schema's default


# --- caps ---------------------------------------------------------------------------------


def frames_table(per_video: dict[str, int], boxes=None) -> pd.DataFrame:
    """Final frames of fake videos (``per_video``: frames each), optionally with boxes."""
    rows = []
    for video, count in per_video.items():
        for i in range(count):
            rows.append({"video_id": video, "frame_index": i * 15, "frame_id": frame_id(video, i * 15),
                         "timestamp_s": i * 0.5, "width": 100, "height": 200, "path": f"x/{video}/{i * 15:08d}.jpg"})
    table = pd.DataFrame(rows)
    if boxes is not None:
        table["category"] = [boxes(r)[0] for r in rows]
        table["bbox"] = [[[10.0, 20.0, 30.0, 40.0]] * len(boxes(r)[0]) for r in rows]
        table["score"] = [[0.9] * len(boxes(r)[0]) for r in rows]
        table["has_detections"] = table["category"].map(len) > 0
    return table


def test_max_frames_per_video_keeps_evenly_spaced_frames():
    frames = frames_table({"a": 10, "b": 3})
    keep = cap_per_video(frames, 4)
    assert frames.loc[keep & (frames["video_id"] == "a"), "frame_index"].tolist() == [0, 45, 90, 135]
    assert keep[frames["video_id"] == "b"].all()
    shuffled = frames.sample(frac=1, random_state=0)
    assert shuffled.loc[cap_per_video(shuffled, 4), "frame_id"].sort_values().tolist() == \
        frames.loc[keep, "frame_id"].tolist()
    assert cap_per_video(frames, 1)[frames["video_id"] == "a"].sum() == 1 and cap_per_video(frames, None).all()


def test_max_frames_per_class_keeps_at_most_n_per_class_rarest_first():
    # 30 frames of cars, 5 with a car and a rare dog, 10 without boxes
    def boxes(row):
        i = row["frame_index"] // 15
        return (["car"] if i < 30 else ["car", "dog"] if i < 35 else []),
    frames = frames_table({"v": 45}, boxes)
    reasons = cap_per_class(frames, 8, seed=0)
    kept = frames[[r == "" for r in reasons]]
    shown = pd.Series([c for cats in kept["category"] for c in (cats or [NO_BOXES])]).value_counts()
    assert shown["car"] == 8 and shown[NO_BOXES] == 8 and shown["dog"] == 5  # every dog frame: rarest first
    assert all(r.startswith("over splits.max_frames_per_class (8) for ") for r in reasons if r)
    shuffled = frames.sample(frac=1, random_state=1).reset_index(drop=True)
    again = shuffled[[r == "" for r in cap_per_class(shuffled, 8, seed=0)]]
    assert sorted(again["frame_id"]) == sorted(kept["frame_id"])  # independent of order
    other = frames[[r == "" for r in cap_per_class(frames, 8, seed=1)]]
    assert sorted(other["frame_id"]) != sorted(kept["frame_id"])  # the seed picks others


# --- the split tables ---------------------------------------------------------------------


def test_make_splits_groups_copies_and_shared_frames_and_reports_the_shares(tmp_path):
    frames = frames_table({"a": 4, "b": 4, "c": 4, "d": 40, "e": 2})
    copies = pd.DataFrame({"video_id": ["a", "b", "z"], "duplicate_of": [None, "a", "a"]})  # z: a copy with no frames
    links = pd.DataFrame({"video_id": ["c", "c"], "frame_id": ["c/00000000", "c/00000015"],
                          "duplicate_of": [None, "d/00000030"]})
    settings = SplitSettings(ratios={"train": 0.5, "val": 0.5}, seed=0, max_frames_per_video=30)
    videos, split_table, record = make_splits(frames, copies, links, settings)
    groups = dict(zip(videos["video_id"], videos["group"]))
    assert groups == {"a": "a", "b": "a", "z": "a", "c": "c", "d": "c", "e": "e"}
    assert videos.groupby("group")["split"].nunique().max() == 1
    assert videos.set_index("video_id")["frames"].to_dict() == {"a": 4, "b": 4, "c": 4, "d": 30, "e": 2, "z": 0}
    capped = split_table.loc[~split_table["kept"], "reason"].unique().tolist()
    assert capped == ["over splits.max_frames_per_video (30)"]
    report = record["report"]
    assert report["groups"] == 3 and sum(report["frames"].values()) == 44 and report["frames"]["test"] == 0
    assert report["capped"] == {"max_frames_per_video": 10, "max_frames_per_class": 0}
    assert report["largest_group"]["group"] == "c" and report["largest_group"]["frames"] == 34
    giant = report["largest_group"]
    assert giant["share"] == pytest.approx(34 / 44, abs=1e-4)
    assert any(note.startswith(f"group c (2 videos with frames) holds 77% of the frames, more than the "
                               f"{giant['split']} target of 50%") for note in report["notes"])
    write_split_tables(tmp_path / "videos.parquet", tmp_path / "frames.parquet", videos, split_table, record)
    assert read_report(tmp_path / "frames.parquet") == report
    assert len(split_frames(tmp_path / "frames.parquet")) == 44


def test_a_clips_video_goes_where_its_frames_went_and_a_video_without_frames_alone():
    """The clip export's split of each video: the splits stage's (its group's), else the
    video's own group's, placed by the same hash; so a clip never sits apart from its
    video's frames, nor a copy's clips apart from the original's."""
    ratios = {"train": 0.5, "val": 0.5}
    videos, _, _ = make_splits(frames_table({"a": 2, "b": 2}),
                               pd.DataFrame({"video_id": ["a", "b"], "duplicate_of": [None, "a"]}), None,
                               SplitSettings(ratios=ratios, seed=3))
    # The stage's table says which split: one that differs from what b's own hash gives shows it is followed.
    videos["split"] = np.where(videos["video_id"] == "b", "test", videos["split"])
    placed = video_splits(["a", "b", "c", "d"], videos, ratios, seed=3)
    assert placed["b"] == "test" and placed["a"] == videos.set_index("video_id").loc["a", "split"]
    alone = assign_splits(["c", "d"], [], ratios, 3).set_index("video_id")["split"]
    assert placed["c"] == alone["c"] and placed["d"] == alone["d"]
    assert video_splits(["c"], None, ratios, 3) == {"c": alone["c"]}


def test_the_report_says_when_a_split_is_empty_or_the_shares_are_off():
    videos = pd.DataFrame({"video_id": ["a", "b"], "group": ["a", "b"], "split": ["train", "train"], "frames": [5, 5]})
    report = split_report(videos, RATIOS, 0)
    assert report["achieved"] == {"train": 1.0, "val": 0.0, "test": 0.0}
    assert report["notes"] == ["val, test have no frames: 2 groups of videos were placed by hash; add videos, or "
                               "set their ratio to 0"]
    assert describe(report) == ("2 groups of videos: train 10 frames (100%, target 80%), val 0 frames (0%, target "
                                "10%), test 0 frames (0%, target 10%)")
    nothing = split_report(videos.assign(frames=0), RATIOS, 0)
    assert nothing["achieved"] == dict.fromkeys(RATIOS) and nothing["largest_group"] is None
    assert describe(nothing).startswith("0 groups of videos: train 0 frames (-, target 80%)")


def demo_ids():
    return {name: video_id_for_path(f"resources/demo/{name}") for name in
            ("astronaut_interview.mp4", "astronaut_reupload.mp4", "cat_and_rocket.mp4", "street_camera.webm")}


@pytest.mark.parametrize("keep_duplicates", [True, False])
def test_the_demos_reupload_lands_in_the_split_of_its_original(keep_duplicates):
    """video_dedup's table as the demo's run writes it: the re-upload is a near copy of the
    original (duplicates.json: {original: [{video_id: re-upload, match: near, distance: 2}]});
    with keep_duplicates its frames go on to the exports, without it only the original's do."""
    ids = demo_ids()
    original, reupload = ids["astronaut_interview.mp4"], ids["astronaut_reupload.mp4"]
    duplicates = {original: [{"video_id": reupload, "match": "near", "distance": 2.0}]}
    copies = pd.DataFrame({"video_id": sorted(ids.values()), "duplicate_of": None})
    for canonical, found in duplicates.items():
        for copy in found:
            copies.loc[copies["video_id"] == copy["video_id"], "duplicate_of"] = canonical
    with_frames = [v for v in ids.values() if keep_duplicates or v != reupload]
    frames = frames_table(dict.fromkeys(with_frames, 20))
    demo = yaml_config()["splits"]
    for settings in (SplitSettings(), SplitSettings.from_config(demo)):
        videos, _, _ = make_splits(frames, copies, None, settings)
        split = videos.set_index("video_id")["split"]
        assert split[reupload] == split[original]
        assert videos.set_index("video_id").loc[reupload, "frames"] == (20 if keep_duplicates else 0)
    # the demo's settings put its three groups in three splits
    assert sorted(split[[original, ids["cat_and_rocket.mp4"], ids["street_camera.webm"]]]) == ["test", "train", "val"]


def yaml_config():
    import yaml

    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


# --- exports ------------------------------------------------------------------------------


@pytest.mark.parametrize("bbox,size,expected", [
    ((10, 20, 30, 40), (100, 200), (0.25, 0.2, 0.3, 0.2)),
    ((0, 0, 100, 200), (100, 200), (0.5, 0.5, 1.0, 1.0)),
    ((-10, -20, 30, 60), (100, 200), (0.1, 0.1, 0.2, 0.2)),  # clipped at the top left
    ((90, 180, 30, 40), (100, 200), (0.95, 0.95, 0.1, 0.1)),  # clipped at the bottom right
    ((120, 20, 10, 10), (100, 200), None),  # outside the image
    ((10, 20, 0, 10), (100, 200), None),  # no width
])
def test_yolo_boxes_are_normalised_centre_and_size_clipped_to_the_image(bbox, size, expected):
    box = yolo_box(bbox, *size)
    assert box == (None if expected is None else pytest.approx(expected))


def test_yolo_label_lines_and_data_yaml():
    lines = label_lines(["cat face", "face", "face"], [(10, 20, 30, 40), (0, 0, 50, 50), (500, 0, 5, 5)], 100, 200,
                        {"face": 0, "cat face": 1})
    assert lines == ["1 0.250000 0.200000 0.300000 0.200000", "0 0.250000 0.125000 0.500000 0.250000"]
    import yaml

    data = yaml.safe_load(data_yaml(["face", "cat face"], ["train", "val"]))
    assert data == {"train": "images/train", "val": "images/val", "nc": 2, "names": {0: "face", 1: "cat face"}}


def test_label_studio_boxes_are_percent_of_the_image():
    result = rectangle((10, 20, 30, 40), "face", 0.87654, 100, 200, "r0")
    assert result["value"] == {"x": 10.0, "y": 10.0, "width": 30.0, "height": 20.0, "rotation": 0,
                               "rectanglelabels": ["face"]}
    assert (result["type"], result["from_name"], result["to_name"], result["score"]) == \
        ("rectanglelabels", "label", "image", 0.8765)
    assert (result["original_width"], result["original_height"]) == (100, 200)
    clipped = rectangle((-10, 190, 30, 40), "face", 0.5, 100, 200, "r1")["value"]
    assert (clipped["x"], clipped["y"], clipped["width"], clipped["height"]) == (0.0, 95.0, 20.0, 5.0)
    config = ET.fromstring(labeling_config(["face", 'a "cat" <face>']))
    labels = config.find("RectangleLabels")
    assert labels.get("name") == "label" and labels.get("toName") == "image"
    assert [label.get("value") for label in labels] == ["face", 'a "cat" <face>']
    assert config.find("Image").get("value") == "$image"


def image_frames(tmp_path, per_video, split_of, boxes=None):
    """Split frames with real (tiny) image files."""
    frames = frames_table(per_video, boxes)
    frames["path"] = [str(tmp_path / "extract" / p) for p in frames["path"]]
    for path in frames["path"]:
        (tmp_path / "extract" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 200), (40, 80, 120)).save(path)
    frames["split"] = frames["video_id"].map(split_of)
    return frames


def test_exports_of_splits_with_boxes_without_boxes_and_without_frames(tmp_path):
    """train has boxes, val has frames but no box, test has no video at all: every COCO file
    loads in pycocotools (test's is empty), the imagefolder loads with train and validation
    (no test folder: datasets cannot load an empty split), YOLO passes the strict check with
    an empty test folder, Label Studio has a task per frame."""
    from pycocotools.coco import COCO

    frames = image_frames(tmp_path, {"a": 3, "b": 2}, {"a": "train", "b": "val"},
                          boxes=lambda r: (["face"] if r["video_id"] == "a" else [],))
    frames.loc[0, "bbox"][0] = [90.0, 190.0, 30.0, 40.0]  # runs off the image: clipped
    coco = build_coco(frames, ["face", "cat face"])
    files = {}
    for split in ("train", "val", "test"):
        files[split] = tmp_path / f"annotations_{split}.json"
        files[split].write_text(json.dumps(coco_split(coco, split)))
        loaded = COCO(str(files[split]))
        assert len(loaded.getImgIds()) == {"train": 3, "val": 2, "test": 0}[split]
        assert len(loaded.getAnnIds()) == {"train": 3, "val": 0, "test": 0}[split]
    assert {image["file_name"].split("/")[0] for image in coco["images"]} == {"train", "val"}

    result = write_dataset(tmp_path / "dataset", frames, {"a": {"title": "A", "location": "a.mp4"}})
    assert result["splits"] == {"train": 3, "val": 2} and not (tmp_path / "dataset" / "test").exists()
    for image in coco["images"]:
        assert (tmp_path / "dataset" / image["file_name"]).is_file()
    assert (tmp_path / "dataset" / coco["images"][0]["file_name"]).stat().st_ino == \
        (tmp_path / frames.loc[0, "path"]).stat().st_ino  # a hard link
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "dataset"), cache_dir=str(tmp_path / "hf"))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 3, "validation": 2}
    assert loaded["validation"][0]["objects"] == {"bbox": [], "category": [], "score": []}
    assert loaded["validation"][0]["title"] is None and loaded["train"][0]["title"] == "A"

    write_yolo(tmp_path / "yolo", frames, ["face", "cat face"], ["train", "val", "test"])
    stems = check_yolo(tmp_path / "yolo")
    assert {k: len(v) for k, v in stems.items()} == {"train": 3, "val": 2, "test": 0}
    assert (tmp_path / "yolo" / "labels" / "val" / "b_00000000.txt").read_text() == ""
    assert (tmp_path / "yolo" / "labels" / "train" / "a_00000000.txt").read_text() == \
        "0 0.950000 0.975000 0.100000 0.050000\n"

    count = write_label_studio(tmp_path / "ls" / "tasks.json", tmp_path / "ls" / "config.xml", frames,
                               ["face", "cat face"], "/data/local-files/?d=", "opencv")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert count == len(tasks) == 5
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=" + coco["images"][0]["file_name"]
    assert tasks[0]["predictions"][0]["result"][0]["value"]["rectanglelabels"] == ["face"]
    assert tasks[-1]["predictions"][0]["result"] == [] and "score" not in tasks[-1]["predictions"][0]


def test_a_task_without_boxes_has_an_empty_prediction():
    row = frames_table({"v": 1}, boxes=lambda r: ([],)).assign(split="test").iloc[0]
    made = task(row, "https://example.org/", "owlv2")
    assert made["data"]["image"] == "https://example.org/test/images/v/00000000.jpg"
    assert made["predictions"] == [{"model_version": "owlv2", "result": []}]


def test_exports_without_detection_and_without_frames(tmp_path):
    frames = image_frames(tmp_path, {"a": 2}, {"a": "test"})
    assert write_dataset(tmp_path / "dataset", frames, {})["splits"] == {"test": 2}
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == ["test"]
    empty = write_dataset(tmp_path / "empty", frames.iloc[:0], {})
    assert empty["images"] == 0 and list((tmp_path / "empty").iterdir()) == []
    videos, split_table, record = make_splits(frames.drop(columns="split").iloc[:0], None, None, SplitSettings())
    assert len(videos) == len(split_table) == 0 and record["report"]["achieved"] == dict.fromkeys(RATIOS)
    from video_miner.export import final_frames

    no_tables = final_frames([])  # a run without any video: no shard, no frame table
    _, split_table, _ = make_splits(no_tables, None, None, SplitSettings())
    write_split_tables(tmp_path / "v.parquet", tmp_path / "f.parquet", videos, split_table, record)
    assert len(split_frames(tmp_path / "f.parquet")) == 0
    write_yolo(tmp_path / "yolo", frames_table({"v": 1}, boxes=lambda r: ([],)).iloc[:0].assign(split=[]),
               ["face"], ["train", "val"])
    assert check_yolo(tmp_path / "yolo") == {"train": set(), "val": set()}


def test_split_settings_cover_the_schema():
    from dataclasses import fields

    from video_miner.defaults import section_defaults

    schema = section_defaults("splits")
    assert {f.name for f in fields(SplitSettings)} == set(schema)
    assert all(f.default == schema[f.name] for f in fields(SplitSettings) if f.name != "ratios")
    assert np.isclose(sum(SplitSettings().ratios.values()), 1)


def test_packed_frames_export_the_same_files_and_metadata_as_loose_ones(tmp_path):
    """The same frames loose and packed in a tar: the same COCO, the same imagefolder
    (image bytes and metadata) and the same YOLO export."""
    from video_miner.framestore import TarPacker

    loose = image_frames(tmp_path, {"a": 2, "b": 1}, {"a": "train", "b": "val"},
                         boxes=lambda r: (["face"] if r["video_id"] == "a" else [],))
    with TarPacker(tmp_path / "packed", max_bytes=1) as packer:  # one frame per tar
        packed = loose.assign(path=[packer.add(f"{v}/{Path(p).name}", Path(p).read_bytes())
                                    for v, p in zip(loose["video_id"], loose["path"])])
    assert build_coco(packed, ["face"]) == build_coco(loose, ["face"])
    for name, frames in (("loose", loose), ("packed", packed)):
        write_dataset(tmp_path / name / "dataset", frames, {"a": {"title": "A", "location": "a.mp4"}})
        write_yolo(tmp_path / name / "yolo", frames, ["face"], ["train", "val"])
    for export in ("dataset", "yolo"):
        files = [{p.relative_to(tmp_path / name / export): p.read_bytes()
                  for p in (tmp_path / name / export).rglob("*") if p.is_file()} for name in ("loose", "packed")]
        assert files[0] == files[1] and len(files[0]) > 3


def test_a_frame_privacy_could_not_check_goes_into_no_export(tmp_path):
    """With privacy on, the split table keeps out the frames the privacy tables do not
    vouch for (unreadable when it looked, or absent): they would go out unblurred."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from video_miner.blur import unchecked_frames
    from video_miner.splits import UNCHECKED

    frames = frames_table({"a": 3})
    ids = frames["frame_id"].tolist()
    pq.write_table(pa.table({"frame_id": ids[:2], "kept": [True, False]}), tmp_path / "privacy.parquet")
    unchecked = unchecked_frames([tmp_path / "privacy.parquet"], frames["frame_id"])
    assert unchecked == {ids[1], ids[2]}  # unreadable, and absent
    _, split_table, _ = make_splits(frames, None, None, SplitSettings(), None, unchecked)
    rows = split_table.set_index("frame_id")
    assert rows.loc[ids[0], "kept"] and not rows.loc[ids[1:], "kept"].any()
    assert (rows.loc[ids[1:], "reason"] == UNCHECKED).all()
    assert split_table["kept"].sum() == 1
