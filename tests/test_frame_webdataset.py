"""The frames' WebDataset export (members, json, shards, the same bytes from loose and
packed frames, blurred regions) and the privacy regions in COCO, the points file and the
drawings, on tiny images made here."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from video_miner.export import build_coco, build_points_coco, write_visualizations
from video_miner.frame_webdataset import sample_key, write_frames_webdataset
from video_miner.framestore import TarPacker

REGION = [32.0, 24.0, 24.0, 16.0]  # clear of the drawn box and its label


def noisy_frames(tmp_path) -> pd.DataFrame:
    """Four frames (noise, so a blur shows): video a (3, train, with boxes and captions),
    video b.1 (1, val; a dot in its id)."""
    rng = np.random.default_rng(0)
    rows = []
    for video, count, split in (("a", 3, "train"), ("b.1", 1, "val")):
        for i in range(count):
            path = tmp_path / "extract" / video / f"{i * 15:08d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path, quality=90)
            rows.append({"video_id": video, "frame_index": i * 15, "frame_id": f"{video}/{i * 15:08d}",
                         "timestamp_s": i * 0.5, "width": 64, "height": 48, "path": str(path), "split": split,
                         "category": ["face"] if video == "a" else [], "score": [0.9] if video == "a" else [],
                         "bbox": [[1.0, 2.0, 30.0, 20.0]] if video == "a" else [],
                         "caption": f"caption {i}" if video == "a" else None})
    return pd.DataFrame(rows)


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def test_frames_webdataset_has_each_frame_and_its_json_and_packed_frames_give_the_same_bytes(tmp_path):
    loose = noisy_frames(tmp_path)
    with TarPacker(tmp_path / "packed", max_bytes=1) as packer:  # one frame per tar
        packed = loose.assign(path=[packer.add(f"{v}/{Path(p).name}", Path(p).read_bytes())
                                    for v, p in zip(loose["video_id"], loose["path"])])
    videos = {"a": {"location": "https://example.org/a.mp4", "title": "A"}}
    regions = {"a/00000015": [REGION]}
    results = {}
    for name, frames in (("loose", loose), ("packed", packed)):
        results[name] = write_frames_webdataset(tmp_path / name / "wds", frames.sample(frac=1, random_state=1),
                                                videos, max_frames=2, regions=regions)
    assert results["loose"] == results["packed"] == {"frames": 4, "splits": {"train": 3, "val": 1},
                                                     "tars": {"train": 2, "val": 1}, "skipped": []}
    tars = sorted(p.relative_to(tmp_path / "loose" / "wds").as_posix() for p in (tmp_path / "loose" / "wds").rglob("*"))
    assert tars == ["train", "train/shard-000000.tar", "train/shard-000001.tar", "val", "val/shard-000000.tar"]
    for tar in tars[1:3] + tars[4:]:  # byte for byte: fixed times and owners, the same frames
        assert (tmp_path / "loose" / "wds" / tar).read_bytes() == (tmp_path / "packed" / "wds" / tar).read_bytes()

    root = tmp_path / "loose" / "wds"
    members = tar_members(root / "train" / "shard-000000.tar") + tar_members(root / "train" / "shard-000001.tar")
    assert [m for m, _ in members] == ["a_00000000.jpg", "a_00000000.json", "a_00000015.jpg", "a_00000015.json",
                                       "a_00000030.jpg", "a_00000030.json"]
    first = json.loads(members[1][1])
    assert first == {"key": "a_00000000", "frame_id": "a/00000000", "video_id": "a", "frame_index": 0,
                     "timestamp_s": 0.0, "split": "train", "width": 64, "height": 48,
                     "source": "https://example.org/a.mp4", "title": "A", "source_video_id": None,
                     "source_start_s": None, "source_end_s": None, "channel": None, "uploader": None,
                     "upload_date": None, "license": None, "run_id": None, "caption": "caption 0",
                     "objects": {"bbox": [[1.0, 2.0, 30.0, 20.0]], "category": ["face"], "score": [0.9]},
                     "blurred_regions": []}
    assert members[0][1] == Path(loose.loc[0, "path"]).read_bytes()  # no region: the extracted bytes
    assert json.loads(members[3][1])["blurred_regions"] == [REGION]
    original = np.asarray(Image.open(loose.loc[1, "path"]), np.int16)
    exported = np.asarray(Image.open(io.BytesIO(members[2][1])), np.int16)
    diff = np.abs(original - exported).max(axis=2)
    x, y, w, h = map(int, REGION)
    assert diff[y:y + h, x:x + w].mean() > 20 and diff[:16, :24].mean() < 12  # blurred inside only
    (val_name, _), (val_json, data) = tar_members(root / "val" / "shard-000000.tar")
    assert (val_name, val_json) == ("b_1_00000000.jpg", "b_1_00000000.json")  # no dot in a key
    assert json.loads(data)["video_id"] == "b.1" and "objects" in json.loads(data)

    # Read back by the webdataset package as a training loader would.
    import webdataset as wds

    samples = list(wds.WebDataset([str(p) for p in sorted((root / "train").glob("*.tar"))], shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["a_00000000", "a_00000015", "a_00000030"]
    assert json.loads(samples[1]["json"])["frame_id"] == "a/00000015" and samples[1]["jpg"] == members[2][1]


def test_frames_webdataset_leaves_out_a_frame_it_cannot_read_and_writes_the_rest(tmp_path):
    frames = noisy_frames(tmp_path).drop(columns=["category", "bbox", "score", "caption"])
    Path(frames.loc[0, "path"]).unlink()
    Path(frames.loc[1, "path"]).write_bytes(b"not an image")
    result = write_frames_webdataset(tmp_path / "wds", frames, {}, max_frames=10,
                                     regions={"a/00000015": [REGION]})  # blurring needs a decode
    assert result["splits"] == {"train": 1, "val": 1}
    assert [path for path, _ in result["skipped"]] == frames.loc[[0, 1], "path"].tolist()
    assert all(reason for _, reason in result["skipped"])
    sample = json.loads(tar_members(tmp_path / "wds" / "train" / "shard-000000.tar")[1][1])
    assert "objects" not in sample and "caption" not in sample and sample["blurred_regions"] == []
    assert sample_key("x/../y.z", 3) == "x___y_z_00000003"  # no folder, no dot


def test_coco_images_and_the_drawings_carry_the_blurred_regions(tmp_path):
    frames = noisy_frames(tmp_path)
    regions = {"a/00000015": [REGION]}
    images = build_coco(frames, ["face"], regions=regions)["images"]
    assert [image["blurred_regions"] for image in images] == [[], [REGION], [], []]
    assert "blurred_regions" not in build_coco(frames, ["face"])["images"][0]  # privacy off
    assert build_points_coco(frames, ["face"], regions=regions)["images"][1]["blurred_regions"] == [REGION]

    frames["has_detections"] = frames["category"].map(len) > 0
    write_visualizations(tmp_path / "plain", frames, ["face"], 10)
    write_visualizations(tmp_path / "private", frames, ["face"], 10, regions)
    drawn = {name: {p.name: np.asarray(Image.open(p), np.int16) for p in (tmp_path / name).iterdir()}
             for name in ("plain", "private")}
    assert sorted(drawn["plain"]) == sorted(drawn["private"]) == ["a_00000000.jpg", "a_00000015.jpg", "a_00000030.jpg"]
    assert np.array_equal(drawn["plain"]["a_00000000.jpg"], drawn["private"]["a_00000000.jpg"])
    diff = np.abs(drawn["plain"]["a_00000015.jpg"] - drawn["private"]["a_00000015.jpg"]).max(axis=2)
    x, y, w, h = map(int, REGION)
    assert diff[y:y + h, x:x + w].mean() > 20 and diff[:16, :24].max() == 0


def test_the_points_script_reads_its_named_inputs_and_records_the_blurred_regions(tmp_path):
    """scripts/points.py as Snakemake runs it (its snakemake object stood in for): the
    split table and the privacy tables by name; each image carries its blurred regions."""
    import runpy
    from types import SimpleNamespace

    from conftest import REPO
    from video_miner.privacy import PRIVACY_FIELDS
    from video_miner.splits import split_frame_fields
    from video_miner.tables.frame import FRAME

    frames = noisy_frames(tmp_path).drop(columns=["caption"]).assign(
        kept=True, reason="", points=[[{"category": "face", "x": 3.0, "y": 4.0}], [], [], []])
    FRAME.write(tmp_path / "frames.parquet", FRAME.table(frames, *split_frame_fields(frames)), {})
    checked = frames[["video_id", "frame_index", "frame_id", "timestamp_s", "width", "height", "path", "kept",
                      "reason"]].assign(regions=[[], [REGION], [], []], region_class=[[], ["face"], [], []],
                                        region_source=[[], ["cascade"], [], []])
    FRAME.write(tmp_path / "privacy.parquet", FRAME.table(checked, *PRIVACY_FIELDS), {})
    outputs = {"combined": str(tmp_path / "points.json"),
               "splits": [str(tmp_path / "points_train.json"), str(tmp_path / "points_val.json")]}
    fake = SimpleNamespace(
        input=SimpleNamespace(frames=str(tmp_path / "frames.parquet"), privacy=[str(tmp_path / "privacy.parquet")]),
        output=SimpleNamespace(**outputs), log=[str(tmp_path / "points.log")],
        params=SimpleNamespace(classes=["face"], backend="moondream", splits=["train", "val"]))
    runpy.run_path(str(REPO / "scripts" / "points.py"), init_globals={"snakemake": fake})
    points = json.loads((tmp_path / "points.json").read_text())
    assert [image["blurred_regions"] for image in points["images"]] == [[], [REGION], [], []]
    assert len(points["annotations"]) == 1
    assert [len(json.loads(Path(p).read_text())["images"]) for p in outputs["splits"]] == [3, 1]
