"""The demo config end to end, as `make demo` runs it (in a temporary folder)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, FakeApi, run_workflow
from export_checks import check_yolo
from video_miner.tables.frame import FRAME

# The module's run counts toward its first test's time limit: 900 s for the run itself.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


CAPTION_KEY = "sk-demo-caption-0a1b2c3d4e-never-write-me"
CAPTION_PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def caption_server():
    """An OpenAI-compatible fake on 127.0.0.1 that answers every caption request."""
    server = FakeApi()
    server.plan[CAPTION_PATH] = [(200, {"choices": [{"message": {"content": "A test caption."}}],
                                        "usage": {"prompt_tokens": 100, "completion_tokens": 5}}, {}, 0)]
    yield server
    server.server.shutdown()


def with_captions_and_audio(config: dict, server, **captions) -> dict:
    """The demo config with captions (the api backend against the fake server, frames
    and clips) and audio (a tiny random Whisper the demo_model rule builds) on: the demo
    itself keeps them off, as random-weight text would pass for real captions. Privacy
    rides along (off in the demo, a face dataset): the faces blurred in every export."""
    return {**config, "download": {**config.get("download", {}), "audio": True}, "privacy": {"enabled": True},
            "audio": {"enabled": True, "model": "resources/models/whisper", "chunk_s": 5, "max_new_tokens": 4},
            "captions": {"enabled": True, "backend": "api", "targets": ["frames", "clips"], "frames_per_clip": 2,
                         "api": {"base_url": server.url + "/v1", "model": "test/vlm", "key_env": "DEMO_CAPTION_KEY",
                                 "max_workers": 2, "retries": 0}, **captions}}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, caption_server):
    workdir = tmp_path_factory.mktemp("demo")
    # A few minutes; twice that on a 2-core machine busy with other work (the clip scores added 37 s at load 2).
    # Captions and audio ride along on this run (the cheapest with frames and clips).
    run_workflow(workdir, with_captions_and_audio(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()),
                                                  caption_server),
                 timeout=900, env={"DEMO_CAPTION_KEY": CAPTION_KEY})
    return workdir


def frames_of(workdir, title):
    """A video's extracted frames: its rows of its shard's extract table, the images under
    results/extract/<shard>/<video>/."""
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t")
    video_id = status.set_index("title").loc[title, "video_id"]
    tables = sorted((workdir / "results" / "extract").glob("*.parquet"))
    frames = FRAME.read(tables, videos=[video_id])
    assert len(frames) > 0 and frames["kept"].all()
    shard = next(t.stem for t in tables if video_id in set(FRAME.read(t, columns=[])["video_id"]))
    assert all(Path(p).parent == Path("results", "extract", shard, video_id) and Path(p).name == f"{i:08d}.jpg"
               for p, i in zip(frames["path"], frames["frame_index"]))
    return frames


def pixels(workdir, path):
    return np.asarray(Image.open(workdir / path), dtype=np.float32)


def test_demo_processes_every_clip(demo_run):
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    assert summary["videos"]["total"] == 4 and summary["videos"]["failed"] == 0
    # 10 s clips sampled every 0.5 s give 20 frames; the 7 s WebM gives 14.
    assert summary["frames"]["extracted"] == 3 * 20 + 14
    extracted = FRAME.read(sorted((demo_run / "results" / "extract").glob("*.parquet")))
    assert len(extracted) == summary["frames"]["extracted"] and extracted["video_id"].nunique() == 4
    status = pd.read_csv(demo_run / "results" / "status.tsv", sep="\t").set_index("title")
    # every clip went through every enabled stage, but for the re-upload: a copy, extracted and no further
    assert status["status"].to_dict() == {"astronaut_interview": "complete", "astronaut_reupload": "rejected",
                                          "cat_and_rocket": "complete", "street_camera": "complete"}
    assert status.loc["astronaut_reupload", "failed_stage"] == "video_dedup"
    assert status["frames_extracted"].sum() == summary["frames"]["extracted"]
    assert status.loc["astronaut_reupload", "frames_passed_filter"] == 0 and summary["videos"]["rejected"] == 1
    # the config the run ran with
    ran_with = yaml.safe_load((demo_run / "results" / "run_config.yaml").read_text())
    assert ran_with["local_videos"] == yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["local_videos"]


def test_demo_reupload_is_a_near_duplicate_and_other_clips_are_not(demo_run):
    original = frames_of(demo_run, "astronaut_interview")
    reupload = frames_of(demo_run, "astronaut_reupload")
    other = frames_of(demo_run, "cat_and_rocket")
    assert original["timestamp_s"].tolist() == reupload["timestamp_s"].tolist()

    def difference(a, b):  # the re-upload is smaller: compare at its size
        with Image.open(demo_run / b) as small, Image.open(demo_run / a) as large:
            resized = np.asarray(large.convert("RGB").resize(small.size, Image.BILINEAR), np.float32)
            return np.abs(resized - np.asarray(small.convert("RGB"), np.float32)).mean()

    same = [difference(a, b) for a, b in zip(original["path"], reupload["path"])]
    different = [difference(a, b) for a, b in zip(original["path"], other["path"])]
    assert max(same) < 6 < min(different)
    # video_dedup found it: the original (more pixels) is canonical, the re-upload skipped by the model stages
    videos = pd.read_parquet(demo_run / "results" / "metadata" / "videos.parquet").set_index("title")
    original_id, reupload_id = videos.loc["astronaut_interview", "video_id"], videos.loc["astronaut_reupload", "video_id"]
    duplicates = json.loads((demo_run / "results" / "metadata" / "duplicates.json").read_text())
    assert list(duplicates) == [original_id] and [d["video_id"] for d in duplicates[original_id]] == [reupload_id]
    assert duplicates[original_id][0]["match"] == "near" and duplicates[original_id][0]["distance"] <= 2
    assert videos.loc["astronaut_reupload", "duplicate_of"] == original_id
    assert (videos.loc["astronaut_reupload", "width"], videos.loc["astronaut_interview", "width"]) == (480, 640)
    assert videos.loc["street_camera", "codec"] == "vp9" and videos["duplicate_of"].notna().sum() == 1
    in_dataset = set(dataset_metadata(demo_run)["video_id"])
    assert reupload_id not in in_dataset and original_id in in_dataset


def test_demo_static_stretch_repeats_and_scene_returns(demo_run):
    frames = frames_of(demo_run, "astronaut_interview")
    first, second = pixels(demo_run, frames["path"][0]), pixels(demo_run, frames["path"][1])
    coffee = pixels(demo_run, frames["path"][13])  # 6.5 s: the cut to the coffee cup
    back = pixels(demo_run, frames["path"][18])  # 9 s: back to the opening shot
    assert np.abs(first - second).mean() < 4  # the static opening: only sensor noise
    assert np.abs(first - coffee).mean() > 30
    assert np.abs(first - back).mean() < 4


def coco_of(workdir, split=None):
    name = "annotations.json" if split is None else f"annotations_{split}.json"
    return json.loads((workdir / "results" / "detections" / name).read_text())


def dataset_metadata(workdir):
    """Every split's metadata.parquet of the imagefolder dataset, with the split (its folder)."""
    paths = sorted((workdir / "results" / "dataset").glob("*/metadata.parquet"))
    return pd.concat([pd.read_parquet(p).assign(split=p.parent.name) for p in paths], ignore_index=True)


def test_demo_opencv_backend_finds_the_astronauts_face_and_the_cat(demo_run):
    coco = coco_of(demo_run)
    status = pd.read_csv(demo_run / "results" / "status.tsv", sep="\t").set_index("video_id")
    images = {image["id"]: status.loc[image["video_id"], "title"] for image in coco["images"]}
    names = {c["id"]: c["name"] for c in coco["categories"]}
    found = {(images[a["image_id"]], names[a["category_id"]], a["score"] > 0.8) for a in coco["annotations"]}
    assert ("astronaut_interview", "face", True) in found  # dozens of cascade windows agree on her face
    assert any(title == "cat_and_rocket" and name == "cat face" for title, name, _ in found)
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    assert summary["detections_per_class"]["face"] == sum(names[a["category_id"]] == "face" for a in coco["annotations"])
    assert 0 < summary["frames"]["with_detections"] <= summary["frames"]["unique"] == len(coco["images"])


def test_demo_coco_loads_and_evaluates_in_pycocotools(demo_run):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = demo_run / "results" / "detections" / "annotations.json"
    ground_truth = COCO(str(path))
    assert [c["name"] for c in ground_truth.loadCats(ground_truth.getCatIds())] == ["face", "cat face"]
    for image in ground_truth.loadImgs(ground_truth.getImgIds()):
        with Image.open(demo_run / "results" / "dataset" / image["file_name"]) as frame:
            assert frame.size == (image["width"], image["height"])
    results = ground_truth.loadRes(coco_of(demo_run)["annotations"])
    evaluation = COCOeval(ground_truth, results, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # the detections scored against themselves
    # segment (the demo's tiny random SAM): every box has its mask as RLE, the area is the mask's
    annotations = coco_of(demo_run)["annotations"]
    assert annotations and all(isinstance(a["segmentation"]["counts"], str) for a in annotations)
    masked = [a for a in annotations if a["area"] > 0]
    segm = COCOeval(ground_truth, ground_truth.loadRes([{k: v for k, v in a.items() if k != "bbox"}
                                                        for a in masked]), "segm")
    segm.evaluate()
    segm.accumulate()
    segm.summarize()
    assert segm.stats[0] > 0.5
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    assert summary["stages"][-6:] == ["detect", "verify", "segment", "audio", "captions", "privacy"]
    assert sum(summary["boxes_dropped_by_verify"].values()) == 0  # random SigLIP2: every crop near 0.45


def test_demo_dataset_loads_as_imagefolder_with_its_splits_and_objects(demo_run):
    import datasets

    data_dir = demo_run / "results" / "dataset"
    dataset = datasets.load_dataset("imagefolder", data_dir=str(data_dir), cache_dir=str(demo_run / "hf-cache"))
    coco = coco_of(demo_run)
    # the demo's ratios and seed put one group of videos in each split (config/demo.yaml); val is
    # datasets' "validation"
    sizes = {name: len(part) for name, part in dataset.items()}
    per_split = {split: sum(image["split"] == split for image in coco["images"]) for split in ("train", "val", "test")}
    assert sizes == {"train": per_split["train"], "validation": per_split["val"], "test": per_split["test"]}
    assert all(sizes.values()) and sum(sizes.values()) == len(coco["images"])
    by_name = {image["file_name"]: image for image in coco["images"]}
    metadata = dataset_metadata(demo_run)
    assert sum(len(objects["bbox"]) for objects in metadata["objects"]) == len(coco["annotations"]) > 0
    first = metadata[metadata["split"] == "train"].iloc[0]
    row = dataset["train"][0]
    image = by_name[f"train/{first['file_name']}"]
    assert row["image"].size == (image["width"], image["height"])
    assert row["video_id"] == first["video_id"] and row["timestamp_s"] == first["timestamp_s"]
    assert set(row["objects"]) == {"bbox", "category", "score"}
    assert str(row["source"]).startswith("resources/demo/")


def test_demo_splits_keep_each_group_of_videos_in_one_split(demo_run):
    """No video in two splits, in any export; the re-upload in its original's split."""
    videos = pd.read_parquet(demo_run / "results" / "splits" / "videos.parquet").set_index("video_id")
    titles = pd.read_parquet(demo_run / "results" / "metadata" / "videos.parquet").set_index("title")["video_id"]
    assert videos.index.is_unique and set(videos.index) == set(titles)
    assert videos.groupby("group")["split"].nunique().max() == 1
    original, reupload = titles["astronaut_interview"], titles["astronaut_reupload"]
    assert videos.loc[reupload, "group"] == videos.loc[original, "group"] == min(original, reupload)
    assert videos.loc[reupload, "split"] == videos.loc[original, "split"] and videos.loc[reupload, "frames"] == 0
    split_of = videos["split"].to_dict()
    coco = coco_of(demo_run)
    assert all(split_of[image["video_id"]] == image["split"] for image in coco["images"])
    metadata = dataset_metadata(demo_run)
    assert (metadata["video_id"].map(split_of) == metadata["split"]).all()
    assert metadata.groupby("video_id")["split"].nunique().max() == 1
    # the summary reports the achieved shares against the targets
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())["splits"]
    assert summary["ratios"] == {"train": 0.6, "val": 0.2, "test": 0.2} and summary["groups"] == 3
    assert summary["frames"] == {s: int((metadata["split"] == s).sum()) for s in ("train", "val", "test")}
    assert sum(summary["achieved"].values()) == pytest.approx(1.0)
    assert summary["videos"] == {s: int(((videos["split"] == s) & (videos["frames"] > 0)).sum())
                                 for s in ("train", "val", "test")}
    assert "splits: 3 groups of videos: train " in (demo_run / "logs" / "summary.log").read_text()


def test_demo_split_coco_files_load_in_pycocotools_and_make_up_the_whole(demo_run):
    from pycocotools.coco import COCO

    combined = coco_of(demo_run)
    ids = []
    for split in ("train", "val", "test"):
        part = COCO(str(demo_run / "results" / "detections" / f"annotations_{split}.json"))
        images = part.loadImgs(part.getImgIds())
        assert images and all(image["file_name"].startswith(f"{split}/images/") for image in images)
        assert all((demo_run / "results" / "dataset" / image["file_name"]).is_file() for image in images)
        annotations = part.loadAnns(part.getAnnIds())
        assert {a["image_id"] for a in annotations} <= {image["id"] for image in images}
        assert part.loadCats(part.getCatIds()) == combined["categories"]
        ids += [(image["id"], image["file_name"]) for image in images]
    assert sorted(ids) == sorted((image["id"], image["file_name"]) for image in combined["images"])
    assert sum(len(coco_of(demo_run, s)["annotations"]) for s in ("train", "val", "test")) == \
        len(combined["annotations"])


def test_demo_yolo_export_passes_the_strict_check(demo_run):
    root = demo_run / "results" / "export" / "yolo"
    stems = check_yolo(root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert data["names"] == {0: "face", 1: "cat face"}
    for split, names in stems.items():
        coco = coco_of(demo_run, split)
        assert len(names) == len(coco["images"]) > 0
        boxes = sum(len(p.read_text().splitlines()) for p in (root / "labels" / split).glob("*.txt"))
        assert boxes == len(coco["annotations"])  # the Haar boxes lie inside their frames
    videos = {split: {name.rsplit("_", 1)[0] for name in names} for split, names in stems.items()}
    assert not (videos["train"] & videos["val"] or videos["train"] & videos["test"] or videos["val"] & videos["test"])


def test_demo_label_studio_file_has_every_frame_with_its_boxes_as_predictions(demo_run):
    import xml.etree.ElementTree as ET

    folder = demo_run / "results" / "export" / "label_studio"
    tasks = json.loads((folder / "tasks.json").read_text())
    coco = coco_of(demo_run)
    assert len(tasks) == len(coco["images"])
    prefix = "/data/local-files/?d="
    assert all((demo_run / "results" / "dataset" / t["data"]["image"].removeprefix(prefix)).is_file() for t in tasks)
    regions = [r for t in tasks for r in t["predictions"][0]["result"]]
    assert len(regions) == len(coco["annotations"])
    assert all(0 <= r["value"]["x"] <= r["value"]["x"] + r["value"]["width"] <= 100 for r in regions)
    assert {r["value"]["rectanglelabels"][0] for r in regions} <= {"face", "cat face"}
    config = ET.parse(folder / "config.xml").getroot()
    assert [label.get("value") for label in config.find("RectangleLabels")] == ["face", "cat face"]


def sharpness(image: np.ndarray, box) -> float:
    """Mean horizontal gradient inside a box (xywh): a blur flattens it."""
    x, y, w, h = (int(v) for v in box)
    return float(np.abs(np.diff(image[y:y + h, x:x + w].mean(axis=2), axis=1)).mean())


def test_demo_privacy_blurs_the_faces_in_every_export_and_not_the_extracted_frames(demo_run):
    """Privacy on (this run's config): the opencv detections' faces (and the plate cascade)
    give regions; the summary counts them; the dataset, YOLO and WebDataset hold the same
    blurred bytes for a frame with regions (hard links for the others); COCO records the
    regions; the drawings are drawn on the blurred frames; the extracted frames stay sharp."""
    import webdataset as wds

    from video_miner import framestore
    from video_miner.export import dataset_file_name
    from video_miner.frame_webdataset import sample_key
    from video_miner.fsutil import safe_name
    from video_miner.splits import split_frames
    from video_miner.yolo import yolo_stem

    results = demo_run / "results"
    checked = FRAME.read(sorted((results / "privacy").glob("*.parquet")))
    frames = split_frames(results / "splits" / "frames.parquet")
    assert set(frames["frame_id"]) <= set(checked["frame_id"]) and checked["kept"].all()
    regions = {f: [list(r) for r in rs] for f, rs in zip(checked["frame_id"], checked["regions"]) if len(rs)}
    # The faces: regions from the run's own boxes (the plate cascade may add weak ones on
    # flat areas, where a blur shows little).
    faces = {f: [list(r) for r, source in zip(rs, ss) if source == "detection"]
             for f, rs, ss in zip(checked["frame_id"], checked["regions"], checked["region_source"])}
    faces = {f: rs for f, rs in faces.items() if rs}
    assert faces  # the astronaut's
    summary = json.loads((results / "pipeline_result.json").read_text())
    assert summary["privacy"] == {"frames": len(checked), "frames_with_regions": len(regions),
                                  "regions": sum(map(len, regions.values())), "unreadable": 0}
    assert summary["funnel"][-1] == {"stage": "privacy", "level": "frame", "count": len(checked),
                                     "label": "frames checked for faces and licence plates"}

    coco = {image["file_name"]: image for image in coco_of(demo_run)["images"]}
    webdataset = {}
    for split in ("train", "val", "test"):
        tars = sorted(str(p) for p in (results / "export" / "webdataset" / split).glob("shard-*.tar"))
        webdataset.update({sample["__key__"]: sample for sample in wds.WebDataset(tars, shardshuffle=False)})
    assert len(webdataset) == len(frames) == len(coco)
    blurred = 0
    for row in frames.itertuples(index=False):
        name = dataset_file_name(row.split, row.video_id, row.frame_index, row.path)
        exported = results / "dataset" / name
        yolo = results / "export" / "yolo" / "images" / row.split / f"{yolo_stem(row.video_id, row.frame_index)}.jpg"
        sample = webdataset[sample_key(row.video_id, row.frame_index)]
        meta = json.loads(sample["json"])
        own = regions.get(row.frame_id, [])
        assert coco[name]["blurred_regions"] == meta["blurred_regions"] == own
        assert meta["frame_id"] == row.frame_id and meta["split"] == row.split and meta["caption"] == "A test caption."
        # one blurred (or linked) file, the same bytes in every export
        assert sample["jpg"] == exported.read_bytes() == yolo.read_bytes()
        original = demo_run / row.path
        if not own:
            assert exported.stat().st_ino == original.stat().st_ino  # a hard link: nothing to blur
            continue
        blurred += 1
        assert exported.stat().st_ino != original.stat().st_ino and yolo.stat().st_ino != original.stat().st_ino
        before, after = pixels(demo_run, row.path), pixels(demo_run, exported.relative_to(demo_run))
        for region in faces.get(row.frame_id, []):  # the original stays sharp where the exports are blurred
            assert sharpness(before, region) > 2 * sharpness(after, region)
        assert framestore.read_bytes(original) != sample["jpg"]
    assert blurred == sum(f in regions for f in frames["frame_id"]) > 0

    # The drawings (shared like the exports) are drawn on the blurred frames: inside a face
    # (the median pixel: other boxes' lines and labels may cross it) they match the export,
    # not the original.
    drawn = 0
    for row in frames[frames["frame_id"].isin(faces)].itertuples(index=False):
        path = results / "detections" / "visualizations" / f"{safe_name(row.frame_id.replace('/', '_'))}.jpg"
        if not path.is_file():
            continue
        picture = np.asarray(Image.open(path), dtype=np.float32)
        name = dataset_file_name(row.split, row.video_id, row.frame_index, row.path)
        before, after = pixels(demo_run, row.path), pixels(demo_run, Path("results", "dataset", name))
        for x, y, w, h in faces[row.frame_id]:
            inner = (slice(int(y + 0.35 * h), int(y + 0.65 * h)), slice(int(x + 0.35 * w), int(x + 0.65 * w)))
            to_export, to_original = (np.median(np.abs(picture[inner] - image[inner]).max(axis=2))
                                      for image in (after, before))
            assert to_export < 0.5 * to_original
        drawn += 1
    assert drawn > 0
    marker = json.loads((results / "upload" / "demo_folder.done").read_text())
    assert {"export/webdataset/train/shard-000000.tar", "export/webdataset/test/shard-000000.tar"} <= \
        {f["path"] for f in marker["files"]}


def test_demo_upload_marker_lists_every_file_with_its_hash(demo_run):
    import hashlib

    marker = json.loads((demo_run / "results" / "upload" / "demo_folder.done").read_text())
    target = demo_run / "demo-upload"
    uploaded = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert sorted(f["path"] for f in marker["files"]) == uploaded
    assert {"annotations.json", "annotations_val.json", "train/metadata.parquet", "pipeline_result.json"} <= \
        set(uploaded)
    for entry in marker["files"]:
        assert hashlib.sha256((target / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


def test_demo_every_export_verifies_against_its_manifest(demo_run):
    """As Snakemake left them (its hidden timestamp in every folder output included)."""
    from video_miner.manifest import verify_manifest

    results = demo_run / "results"
    manifests = [results / "dataset", results / "export" / "yolo", results / "export" / "webdataset",
                 results / "export" / "clips", results / "clips" / "manifest.json",
                 results / "detections" / "annotations.manifest.json"]
    for target in manifests:
        assert verify_manifest(target) == [], target
    assert (results / "dataset" / ".snakemake_timestamp").exists()


def test_demo_report_has_plots_and_the_gallery(demo_run):
    config = demo_run / "demo.yaml"
    config.write_text((REPO / "config" / "demo.yaml").read_text())
    run_workflow(demo_run, yaml.safe_load(config.read_text()), "--report", str(demo_run / "report.zip"))
    import zipfile

    names = zipfile.ZipFile(demo_run / "report.zip").namelist()
    assert any(n.endswith("funnel.png") for n in names)
    assert any(n.endswith("histograms.png") for n in names) and any(n.endswith("clip_strip.jpg") for n in names)
    assert any(n.endswith("detections_per_class.png") for n in names)
    drawn = sorted((demo_run / "results" / "detections" / "visualizations").glob("*.jpg"))
    assert drawn and all(any(n.endswith(p.name) for n in names) for p in drawn)


def clip_export(workdir):
    clips = pd.read_parquet(workdir / "results" / "clips" / "metadata.parquet")
    titles = pd.read_csv(workdir / "results" / "status.tsv", sep="\t").set_index("video_id")["title"]
    return clips.assign(title=clips["video_id"].map(titles))


def test_demo_transnetv2_splits_the_clips_at_their_cuts(demo_run):
    """The demo's clips are known shots (video_miner.synth.DEMO_CLIPS); the real
    TransNetV2 finds each cut within 2 frames (25 fps). The interview's static shot runs on
    into a zoom of the same view: no cut there, one shot."""
    clips = clip_export(demo_run)
    expected = {"astronaut_interview": [0, 150, 200], "cat_and_rocket": [0, 75, 125, 200],
                "street_camera": [0, 100], "astronaut_reupload": [0, 150, 200]}
    for title, starts in expected.items():
        found = clips[clips["title"] == title]["start_frame"].tolist()
        assert len(found) == len(starts) and all(abs(a - b) <= 2 for a, b in zip(found, starts)), (title, found)
    # clip ids are <video>-<start frame>; the copy's clips are dropped with the reason
    assert (clips["clip_id"] == clips["video_id"] + "-" + clips["start_frame"].map("{:06d}".format)).all()
    copies = clips[clips["title"] == "astronaut_reupload"]
    assert not copies["kept"].any() and all(r[0].startswith("video_dedup: duplicate of") for r in copies["reasons"])
    # A clip is in its video's split, the one its frames are in; the copy's with its original's.
    placed = pd.read_parquet(demo_run / "results" / "splits" / "videos.parquet").set_index("video_id")["split"]
    assert clips["split"].notna().all() and (clips["split"] == clips["video_id"].map(placed)).all()
    assert set(copies["split"]) == set(clips.loc[clips["title"] == "astronaut_interview", "split"])
    assert not clips["reasons"].map(lambda r: any(x.startswith("shots:") for x in r)).any()  # all long enough
    kept = clips[clips["kept"]]
    assert (kept["reasons"].map(len) == 0).all()
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    # the copy's 3 clips are not scored; of the other 9 the text clip and 4 static ones are dropped
    assert summary["clips"] == {"total": 12, "shots": 12, "no_flash": 9, "no_text": 8, "moving": 4, "aesthetic": 4}
    assert len(kept) == 4
    status = pd.read_csv(demo_run / "results" / "status.tsv", sep="\t").set_index("title")
    assert status.loc["cat_and_rocket", "clips_shots"] == 4 and status.loc["cat_and_rocket", "clips_moving"] == 1


def test_demo_cut_clips_play_with_their_duration_and_the_webdataset_reads_back(demo_run):
    import io

    import av
    import webdataset as wds

    clips = clip_export(demo_run)
    kept = clips[clips["kept"]].set_index("clip_id")
    for clip_id, row in kept.iterrows():
        with av.open(str(demo_run / "results" / "clips" / row["path"])) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == row["end_frame"] - row["start_frame"], clip_id
        assert float(frames[-1].time) + 1 / 25 == pytest.approx(row["end_s"] - row["start_s"], abs=1e-3)
    lines = [json.loads(line) for line in (demo_run / "results" / "clips" / "metadata.jsonl").read_text().splitlines()]
    assert [line["clip_id"] for line in lines] == clips["clip_id"].tolist()
    tars = sorted(str(p) for p in (demo_run / "results" / "export" / "clips").glob("shard-*.tar"))
    read = {}
    for sample in wds.WebDataset(tars, shardshuffle=False):
        meta = json.loads(sample["json"])
        with av.open(io.BytesIO(sample["mp4"])) as container:
            read[sample["__key__"]] = (meta["end_frame"] - meta["start_frame"], sum(1 for _ in container.decode(video=0)))
    assert sorted(read) == sorted(kept.index) and all(a == b for a, b in read.values())
    marker = json.loads((demo_run / "results" / "upload" / "demo_folder.done").read_text())
    uploaded = {f["path"] for f in marker["files"]}
    assert {"clips/metadata.jsonl", "clips/metadata.parquet", "export/clips/shard-000000.tar"} <= uploaded


def test_demo_scores_its_clips_from_one_decode_pass_and_calibrates(demo_run):
    """Real RapidOCR drops the clip under burned-in text; the static shots fall below
    motion.min (motion vectors for H.264, optical flow for the VP9 clip); the random
    aesthetic model only records; one decode pass per video scores every clip."""
    from click.testing import CliRunner

    from video_miner.cli import main
    from video_miner.tables import video_outcomes
    from video_miner.tables.clip import CLIP

    clips = clip_export(demo_run)
    clips["scores"] = clips["scores"].map(dict)
    scored = clips[clips["title"] != "astronaut_reupload"]
    reasons = {(row.title, i): row.reasons for title, part in scored.groupby("title")
               for i, row in enumerate(part.itertuples())}
    text = scored[scored["title"] == "cat_and_rocket"].iloc[2]  # the rocket under "SUBSCRIBE"
    assert list(text["reasons"]) == [f"ocr: text covers {text['scores']['text_area']:.1%} of a frame (more than "
                                     "ocr.max_text_area 0.02)"] and text["scores"]["text_area"] > 0.1
    static = [("cat_and_rocket", 0), ("cat_and_rocket", 1), ("street_camera", 0), ("astronaut_interview", 2)]
    assert all(len(reasons[k]) == 1 and reasons[k][0].startswith("motion: motion ") for k in static), reasons
    assert {k for k, r in reasons.items() if not len(r)} == {("cat_and_rocket", 3), ("street_camera", 1),
                                                               ("astronaut_interview", 0), ("astronaut_interview", 1)}
    assert all(set(s) == {"flash", "text_area", "motion", "aesthetic"} for s in clips.loc[clips["kept"], "scores"])
    assert all(s["flash"] == 0 for s in scored["scores"]) and clips.loc[clips["title"] == "astronaut_reupload",
                                                                        "scores"].map(len).eq(0).all()
    motion = CLIP.read(sorted((demo_run / "results" / "motion").glob("*.parquet")))
    backends = motion.assign(title=motion["video_id"].map(clips.set_index("video_id")["title"].to_dict()))
    assert set(backends.loc[backends["title"] == "street_camera", "motion_backend"]) == {"dis"}  # VP9: no vectors
    assert set(backends.loc[backends["title"] != "street_camera", "motion_backend"]) == {"motion_vectors"}
    outcomes = {v: o for p in (demo_run / "results" / "flash").glob("*.parquet") for v, o in video_outcomes(p).items()}
    assert len(outcomes) == 3 and all(o["decode_passes"] == 1 for o in outcomes.values())
    # calibration: a seeded sample scored by every stage, nothing dropped, every quantile
    calibration = json.loads((demo_run / "results" / "calibration" / "quantiles.json").read_text())
    assert calibration["clips"] == calibration["clips_scored"] == 6
    assert set(calibration["quantiles"]) == {"flash", "text_area", "motion", "aesthetic"}
    assert all(len(q) == 9 and None not in q.values() for q in calibration["quantiles"].values())
    assert set(calibration["suggested"]) == {"flash", "ocr", "motion", "aesthetic"} and calibration["joint_keeps"] > 0
    sample = pd.read_parquet(demo_run / "results" / "calibration" / "scores.parquet")
    assert len(sample) == 6 and sample["kept"].all() and sample["text_area"].notna().all()
    with Image.open(demo_run / "results" / "report" / "clip_strip.jpg") as strip:
        assert strip.width >= 640 and strip.height > 200
    # live progress from the per-video records, as `video-miner status` shows it
    status = CliRunner().invoke(main, ["status", "-d", str(demo_run)])
    assert status.exit_code == 0, status.output
    assert "clip scores: 3 of 3 videos" in status.output
    progress = status.output.split("clip scores:", 1)[1].splitlines()
    assert [line.split() for line in progress if line.strip().startswith(("flash ", "motion "))] == [
        ["flash", "9", "9"], ["motion", "8", "4"]]


def test_demo_captions_frames_and_clips_and_transcribes_the_soundtrack(demo_run, caption_server):
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    clips = pd.read_json(demo_run / "results" / "clips" / "metadata.jsonl", lines=True)
    captions = summary["captions"]
    # every final frame and every clip that passed the clip stages, one request each
    assert captions["frames"] > 0
    assert captions["captioned"] == captions["frames"] + captions["clips"] == captions["sent"]
    assert captions["failed"] == {} and captions["tokens"] == {"prompt": 100 * captions["sent"],
                                                               "completion": 5 * captions["sent"],
                                                               "total": 105 * captions["sent"]}
    assert len(caption_server.requests) == captions["sent"]
    clip_requests = [r for r in caption_server.requests if len(r["body"]["messages"][1]["content"]) == 3]
    assert len(clip_requests) == captions["clips"] > 0  # the prompt and frames_per_clip (2) frames
    assert {s["stage"]: s["count"] for s in summary["funnel"]}["captions"] == captions["captioned"]
    # the clip export: captions where the clip was captioned, the soundtrack's (random) text
    # on the clips of the one video with audio, none elsewhere
    titles = pd.read_csv(demo_run / "results" / "status.tsv", sep="\t").set_index("video_id")["title"]
    clips["title"] = clips["video_id"].map(titles)
    assert set(clips["caption"].dropna()) == {"A test caption."}
    assert clips.loc[clips["title"] == "cat_and_rocket", "transcript"].notna().all()
    assert clips.loc[clips["title"] != "cat_and_rocket", "transcript"].isna().all()
    assert summary["audio"] == {"videos": 3, "transcribed": 1, "no_audio": 2, "failed": 0,
                                "segments": summary["audio"]["segments"]} and summary["audio"]["segments"] >= 2
    segments = pd.concat(pd.read_parquet(p) for p in (demo_run / "results" / "audio" / "segments").glob("*.parquet"))
    assert list(segments.columns) == ["video_id", "start_s", "end_s", "text", "language"]
    # the dataset and COCO carry both on every frame
    metadata = pd.concat(pd.read_parquet(p) for p in (demo_run / "results" / "dataset").glob("*/metadata.parquet"))
    assert (metadata["caption"] == "A test caption.").all()
    cat = metadata["video_id"].map(titles) == "cat_and_rocket"
    assert metadata.loc[cat, "transcript"].notna().all() and metadata.loc[~cat, "transcript"].isna().all()
    coco = json.loads((demo_run / "results" / "detections" / "annotations.json").read_text())
    assert all(image["caption"] == "A test caption." and "transcript" in image for image in coco["images"])
    # the key went out in the header only: no file of the run holds it
    for folder in ("results", "logs", ".snakemake"):
        for path in (demo_run / folder).rglob("*"):
            if path.is_file():
                assert CAPTION_KEY.encode() not in path.read_bytes(), path


def test_demo_captions_are_not_sent_twice_and_again_after_a_prompt_change(demo_run, caption_server):
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    env = {"DEMO_CAPTION_KEY": CAPTION_KEY}
    sent = len(caption_server.requests)
    run_workflow(demo_run, with_captions_and_audio(config, caption_server), env=env)
    assert len(caption_server.requests) == sent
    changed = with_captions_and_audio(config, caption_server, prompt="Name what you see.")
    dry = run_workflow(demo_run, changed, "-n", env=env)
    summary = json.loads((demo_run / "results" / "pipeline_result.json").read_text())
    items = summary["captions"]["captioned"]
    # every item again: the cache key covers both prompts
    said = re.search(r"captions: about (\d+) items would be sent", dry.stdout + dry.stderr)
    assert said and int(said.group(1)) >= items  # copies of videos are left out only when the job runs
    run_workflow(demo_run, changed, env=env)
    assert len(caption_server.requests) == sent + items
    assert "Name what you see." in {r["body"]["messages"][1]["content"][0]["text"]
                                    for r in caption_server.requests[sent:]}
