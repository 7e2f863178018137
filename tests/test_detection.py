"""Detection backends (tiny Grounding DINO, OWLv2, Florence-2; real Haar cascades), the
detect rule and COCO output."""

import json

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from conftest import run_workflow
from video_miner.defaults import SCHEMA_PATH, section_defaults
from video_miner.detection import (BACKENDS, DetectionSettings, finalize, make_detector, match_class, nms_per_class,
                                   phrase_spans)
from video_miner.models import ModelSettings
from video_miner.stages import STAGES, stage
from video_miner.tables.frame import FRAME

CPU = ModelSettings(device="cpu", batch_size=2, num_workers=2)
ASTRONAUT_FACE = (177, 66, 95, 95)  # x, y, w, h: found by every frontal-face cascade on the original photo


def iou_xywh(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter = max(0, min(ax1, bx1) - max(a[0], b[0])) * max(0, min(ay1, by1) - max(a[1], b[1]))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()).save(root / "astronaut.jpg", quality=95)
    Image.fromarray(skimage.data.coffee()).save(root / "coffee.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def test_nms_keeps_the_best_box_per_overlapping_group_and_class():
    dets = np.array([[0, 0, 10, 10, 0.9, 0], [1, 1, 10, 10, 0.8, 0], [1, 1, 10, 10, 0.7, 1], [50, 50, 60, 60, 0.6, 0]],
                    np.float32)
    kept = nms_per_class(dets, iou=0.5)
    assert kept[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.6])  # the 0.8 box overlaps the 0.9 one of its class


def test_finalize_clips_thresholds_and_caps():
    settings = DetectionSettings(classes=("a",), threshold=0.5, max_per_image=1)
    raw = np.array([[-5, -5, 20, 20, 0.9, 0], [30, 30, 40, 40, 0.6, 0], [0, 0, 5, 5, 0.4, 0], [5, 5, 5, 9, 0.99, 0]])
    out = finalize(raw, width=16, height=12, settings=settings)
    assert out.tolist() == [[0, 0, 16, 12, pytest.approx(0.9), 0]]


def test_phrase_spans_find_each_class_in_order_and_refuse_truncated_prompts():
    assert phrase_spans([101, 7, 8, 5, 9, 5, 102], [[7, 8], [9]]) == [[1, 2], [4]]
    with pytest.raises(ValueError, match="does not fit"):
        phrase_spans([101, 7, 8, 5, 102], [[7, 8], [9]])


def test_generated_phrases_map_to_configured_classes():
    classes = ["cat", "cat face", "licence plate"]
    assert match_class("Cat Face ", classes) == 1
    assert match_class("a cat face.", classes) == 1  # the longest class the phrase names
    assert match_class("dog", classes) is None


def test_backends_are_the_schemas_and_bring_their_default_checkpoints():
    import yaml

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert BACKENDS == tuple(schema["properties"]["detection"]["properties"]["backend"]["enum"])
    assert DetectionSettings.from_config({"classes": ["cat"]}).model == "IDEA-Research/grounding-dino-base"
    assert DetectionSettings.from_config({"backend": "owlv2"}).model == "google/owlv2-base-patch16-ensemble"
    assert DetectionSettings.from_config({"backend": "opencv"}).model is None
    with pytest.raises(ValueError, match="unknown detection backend 'yolo'; known: grounding_dino, owlv2"):
        make_detector(DetectionSettings(backend="yolo", classes=("cat",)), CPU)


def test_opencv_options_default_to_the_schemas():
    detector = make_detector(DetectionSettings(backend="opencv", classes=("face",), opencv={"min_neighbors": 5}), CPU)
    assert detector.options == {**section_defaults("detection", "opencv"), "min_neighbors": 5}


def test_opencv_backend_finds_the_astronauts_face(photos):
    settings = DetectionSettings.from_config({"backend": "opencv", "classes": ["face", "cat face"]})
    found = make_detector(settings, CPU).detect([str(photos / "astronaut.jpg"), str(photos / "broken.jpg"),
                                                 str(photos / "coffee.png")])
    assert found[1] is None  # unreadable: reported, not fatal
    faces = [row for row in found[0] if row[5] == 0]
    best = max(faces, key=lambda row: row[4])
    assert iou_xywh((best[0], best[1], best[2] - best[0], best[3] - best[1]), ASTRONAUT_FACE) > 0.7
    assert best[4] > 0.8


def test_opencv_backend_rejects_classes_it_has_no_cascade_for():
    settings = DetectionSettings.from_config({"backend": "opencv", "classes": ["face", "glass door"]})
    with pytest.raises(ValueError, match="glass door"):
        make_detector(settings, CPU)


@pytest.mark.parametrize("backend", ["grounding_dino", "owlv2", "florence2"])
def test_hf_backends_load_by_path_and_return_pixel_boxes(backend, tiny_models, photos):
    settings = DetectionSettings.from_config({"backend": backend, "model": str(tiny_models[backend]),
                                              "classes": ["cat", "face"], "threshold": 0.0, "text_threshold": 0.0})
    found = make_detector(settings, CPU).detect([str(photos / "astronaut.jpg"), str(photos / "broken.jpg"),
                                                 str(photos / "coffee.png")])
    assert found[1] is None
    for boxes, (width, height) in ((found[0], (512, 512)), (found[2], (600, 400))):
        assert boxes.shape[1] == 6
        assert ((boxes[:, 0] >= 0) & (boxes[:, 2] <= width) & (boxes[:, 3] <= height)).all()
        assert set(boxes[:, 5].astype(int)) <= {0, 1}
    if backend != "florence2":  # random Florence-2 weights generate no class names
        assert len(found[0]) > 0


def test_florence2_parses_grounded_phrases_into_class_boxes(tiny_models):
    settings = DetectionSettings.from_config({"backend": "florence2", "model": str(tiny_models["florence2"]),
                                              "classes": ["cat", "face"]})
    detector = make_detector(settings, CPU)
    image = Image.new("RGB", (640, 480))
    parsed = detector.parse("</s><s>a cat<loc_0><loc_0><loc_500><loc_500>dog<loc_100><loc_100><loc_900><loc_900></s>",
                            image)
    assert parsed[:, 5].tolist() == [0]  # "dog" is not a configured class
    x0, y0, x1, y1 = parsed[0, :4]
    assert x0 < 2 and y0 < 2 and x1 == pytest.approx(320.3, abs=1) and y1 == pytest.approx(240.2, abs=1)


def test_detect_frames_reuses_cached_videos_and_recomputes_changed_settings(tmp_path):
    from video_miner.detection import Detector, detect_frames
    from video_miner.shardjob import VideoCache

    frames = pd.DataFrame([{"video_id": v, "frame_index": i, "frame_id": f"{v}/{i:08d}", "timestamp_s": i / 2,
                            "width": 64, "height": 48, "path": f"{v}/{i}.jpg"} for v, n in (("b", 2), ("a", 3))
                           for i in range(n)])
    calls, made = [], []

    class Fake:
        def detect(self, paths):
            calls.append(list(paths))
            # a box of class 1 on frame 1 of each video; "a/2" cannot be read
            return [None if p == "a/2.jpg" else np.array([[1, 2, 11, 22, 0.9, 1]] * p.endswith("/1.jpg"),
                                                         np.float32).reshape(-1, 6) for p in paths]

        annotate = Detector.annotate  # boxes as Found, as every box backend

    def factory():
        made.append(1)
        return Fake()

    settings = {"backend": "fake", "classes": ["cat", "face"], "threshold": 0.3}
    table, record = detect_frames(frames, factory, ["cat", "face"], VideoCache(tmp_path / "cache", settings))
    assert len(made) == 1 and sum(len(c) for c in calls) == 5
    assert table.column("frame_id").to_pylist() == ["a/00000000", "a/00000001", "a/00000002", "b/00000000",
                                                   "b/00000001"]
    assert table.column("kept").to_pylist() == [True, True, False, True, True]
    assert table.column("has_detections").to_pylist() == [False, True, False, False, True]
    assert table.column("bbox").to_pylist()[1] == [[1, 2, 10, 20]]  # xywh
    assert record["unreadable"] == 1 and record["detections"] == {"cat": 0, "face": 2}
    calls.clear(), made.clear()
    again, _ = detect_frames(frames, factory, ["cat", "face"], VideoCache(tmp_path / "cache", settings))
    assert made == [] and calls == []  # every video came from the cache: no detector made
    assert again.equals(table)
    changed = {**settings, "threshold": 0.5}
    detect_frames(frames, factory, ["cat", "face"], VideoCache(tmp_path / "cache", changed))
    assert len(made) == 1 and sum(len(c) for c in calls) == 5


def test_detect_frames_on_a_shard_without_frames_loads_no_detector(tmp_path):
    """A shard whose videos all failed upstream (or lost every frame) still gets its table."""
    from video_miner.detection import DETECT_FIELDS, detect_frames
    from video_miner.shardjob import VideoCache

    frames = pd.DataFrame([{"video_id": "a", "frame_index": 0, "frame_id": "a/00000000", "timestamp_s": 0.0,
                            "width": 64, "height": 48, "path": "a/0.jpg"}]).iloc[:0]
    table, record = detect_frames(frames, lambda: pytest.fail("no detector for a shard without frames"),
                                  ["cat", "face"], VideoCache(tmp_path / "cache", {}))
    FRAME.write(tmp_path / "detect.parquet", table, record)
    assert table.num_rows == 0 and table.schema == FRAME.schema(*DETECT_FIELDS)
    assert record["frames"] == 0 and record["detections"] == {"cat": 0, "face": 0}
    assert len(FRAME.read(tmp_path / "detect.parquet")) == 0


@pytest.fixture(scope="module")
def detect_runs(tmp_path_factory, videos, scene_videos, tiny_models):
    """The workflow with each transformers backend (tiny checkpoints by path): one whole
    run, then a copy of the previous run with the next backend, where only detection and
    what follows it rerun. The first run also verifies its boxes (the filter's SigLIP2,
    the filter itself off) and segments them (tiny SAM); the later ones turn both off."""
    import shutil

    runs = {}
    for backend in ("grounding_dino", "owlv2", "florence2"):
        workdir = tmp_path_factory.mktemp(backend)
        config = {
            "local_videos": [str(scene_videos["static_then_cut.mp4"]), str(scene_videos["cat_pan.mp4"]),
                             str(videos["truncated.mp4"])],
            "extract": {"strategy": "time", "every_seconds": 1.0},
            "models": {"device": "cpu", "batch_size": 4},
            "shard_size": 2,
            "dedup": {"backend": "phash"},
            "detection": {"enabled": True, "backend": backend, "model": str(tiny_models[backend]),
                          "classes": ["cat", "face"], "threshold": 0.0, "text_threshold": 0.0,
                          "max_per_image": 5, "visualize": {"max_images": 3}},
        }
        if backend == "grounding_dino":
            config["detection"]["verify"] = True
            config["filter"] = {"model": str(tiny_models["siglip2"])}
            config["segment"] = {"enabled": True, "model": str(tiny_models["sam"]), "batch_size": 2}
        if runs:
            shutil.copytree(list(runs.values())[-1], workdir, dirs_exist_ok=True, symlinks=True)
        before = {p: p.stat().st_mtime_ns for s in STAGES[:STAGES.index(stage("detect"))]
                  for p in workdir.glob(s.table("*"))}
        run_workflow(workdir, config)
        assert {p: p.stat().st_mtime_ns for p in before} == before  # the stages before detection did not rerun
        runs[backend] = workdir
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["grounding_dino", "owlv2", "florence2"])
def test_detect_rule_writes_valid_coco_for_each_backend(backend, detect_runs):
    from pycocotools.coco import COCO

    workdir = detect_runs[backend]
    coco = COCO(str(workdir / "results" / "detections" / "annotations.json"))
    unique = pd.read_parquet(workdir / "results" / "dedup" / "unique_frames.parquet")
    assert len(coco.getImgIds()) == int(unique["kept"].sum()) > 0
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "face"]
    # one detect table per shard, covering exactly the unique frames of its videos
    tables = sorted((workdir / "results" / "detect").glob("*.parquet"))
    assert [t.stem for t in tables] == sorted(p.stem for p in (workdir / "results" / "extract").glob("*.parquet"))
    detected = FRAME.read(tables)
    assert len(tables) == 2 and detected["kept"].all()  # every frame readable
    assert detected["frame_id"].tolist() == sorted(unique.loc[unique["kept"], "frame_id"])
    assert (detected["has_detections"] == detected["category"].map(len).astype(bool)).all()
    extracted = FRAME.read(sorted((workdir / "results" / "extract").glob("*.parquet"))).set_index("frame_id")
    sizes = extracted.loc[detected["frame_id"], ["width", "height"]].to_numpy()
    assert (detected[["width", "height"]].to_numpy() == sizes).all()  # frame sizes come from extraction
    logs = sorted((workdir / "logs" / "detect").glob("*.log"))
    assert [log.stem for log in logs] == [t.stem for t in tables]  # logs/detect/<shard>.log
    # once in the shard with frames; not at all in the shard holding only the broken video
    assert sorted(log.read_text().count("loading detector") for log in logs) == [0, 1]
    summary = json.loads((workdir / "results" / "pipeline_result.json").read_text())
    assert summary["videos"]["failed"] == 1  # the truncated video; the others went on to detection
    assert sum(summary["detections_per_class"].values()) == len(coco.getAnnIds())
    assert summary["frames"]["with_detections"] == int(detected["has_detections"].sum())
    status = pd.read_csv(workdir / "results" / "status.tsv", sep="\t")
    assert sorted(status["status"]) == ["complete", "complete", "failed"]
    if backend != "florence2":
        assert len(coco.getAnnIds()) > 0
        for annotation in coco.loadAnns(coco.getAnnIds()):
            image = coco.loadImgs(annotation["image_id"])[0]
            x, y, w, h = annotation["bbox"]
            assert 0 <= x and x + w <= image["width"] + 0.01 and y + h <= image["height"] + 0.01
            if "segmentation" not in annotation:  # with masks (the first run), the mask's area
                assert annotation["area"] == pytest.approx(w * h, rel=1e-3)
        drawn = list((workdir / "results" / "detections" / "visualizations").glob("*.jpg"))
        assert len(drawn) == min(3, summary["frames"]["with_detections"])


@pytest.mark.slow
def test_verify_and_segment_refine_the_boxes_and_the_exports_read_the_last_stage(detect_runs):
    """The grounding_dino run: verify keeps what its crops score (the tiny SigLIP2 gives
    ~0.45, over the default threshold), segment adds a mask per kept box; splits and COCO
    read segment's table, not detect's; masks decode to their areas inside their boxes."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    workdir = detect_runs["grounding_dino"]
    results = workdir / "results"
    detected = FRAME.read(sorted((results / "detect").glob("*.parquet")))
    verified = FRAME.read(sorted((results / "verify").glob("*.parquet")))
    segmented = FRAME.read(sorted((results / "segment").glob("*.parquet")))
    assert len(list((results / "segment").glob("*.parquet"))) == 2  # one table per shard, as every frame stage
    assert verified["frame_id"].tolist() == detected.loc[detected["kept"], "frame_id"].tolist()
    boxes = lambda table: int(table["category"].map(len).sum())  # noqa: E731
    dropped = int(verified["dropped"].map(len).sum())
    assert boxes(verified) + dropped == boxes(detected) > 0
    assert (verified["verify_score"].map(len) == verified["category"].map(len)).all()
    assert boxes(segmented) == boxes(verified) and (segmented["segmentation"].map(len) ==
                                                   segmented["category"].map(len)).all()
    coco = COCO(str(results / "detections" / "annotations.json"))
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) == boxes(segmented)
    for annotation in annotations:
        image = coco.loadImgs(annotation["image_id"])[0]
        rle = annotation["segmentation"]
        assert isinstance(rle["counts"], str) and rle["size"] == [image["height"], image["width"]]
        mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert int(mask.sum()) == annotation["area"]
        if annotation["area"]:
            ys, xs = mask.nonzero()
            x, y, w, h = annotation["bbox"]
            assert x - 1 <= xs.min() and xs.max() <= x + w + 1 and y - 1 <= ys.min() and ys.max() <= y + h + 1
    assert "segmentation" in pd.read_parquet(results / "splits" / "frames.parquet").columns
    summary = json.loads((results / "pipeline_result.json").read_text())
    assert summary["stages"][-3:] == ["detect", "verify", "segment"]
    assert sum(summary["detections_per_class"].values()) == len(annotations)
    assert sum(summary["boxes_dropped_by_verify"].values()) == dropped
    status = pd.read_csv(results / "status.tsv", sep="\t")
    assert {"frames_with_verified_detections", "frames_with_masks"} <= set(status.columns)
    logs = sorted((workdir / "logs" / "segment").glob("*.log"))
    assert sorted(log.read_text().count("loading segmenter") for log in logs) == [0, 1]
    # the next run (owlv2) turned both off: its exports read detect's boxes, without masks
    later = json.loads((detect_runs["owlv2"] / "results" / "pipeline_result.json").read_text())
    assert later["stages"][-1] == "detect" and later["boxes_dropped_by_verify"] is None
    assert "segmentation" not in pd.read_parquet(detect_runs["owlv2"] / "results" / "splits" / "frames.parquet")
