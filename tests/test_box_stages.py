"""The stages after detection: verify (crops scored against their class's prompt, wrong
boxes dropped with the reason) and segment (SAM masks as COCO RLE), and the COCO files
they feed (masks in ``segmentation``, points as keypoints)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from video_miner.export import build_coco, build_points_coco
from video_miner.models import ModelSettings
from video_miner.segment import SamSegmenter, box_pixels, decode_mask, segment_frames
from video_miner.shardjob import VideoCache
from video_miner.stages import box_stage, enabled_stages, upstream, verify_enabled
from video_miner.tables.frame import FRAME
from video_miner.verify import crop_box, decide, verify_frames

CPU = ModelSettings(device="cpu", batch_size=4, num_workers=1)
RED = (40, 30, 120, 80)  # x, y, w, h of the red square in the test frame
VERIFY = {"classes": ["cat", "face"], "model": "unused", "verify_template": "a photo of a {}",
          "verify_threshold": 0.5, "verify_padding": 0.0}


def frame_rows(path, boxes: list[tuple[str, float, tuple]], video="v", index=0, size=(200, 150)) -> dict:
    return {"video_id": video, "frame_index": index, "frame_id": f"{video}/{index:08d}", "timestamp_s": 0.0,
            "width": size[0], "height": size[1], "path": str(path), "has_detections": bool(boxes),
            "category": [c for c, _, _ in boxes], "score": [s for _, s, _ in boxes],
            "bbox": [list(map(float, b)) for _, _, b in boxes], "points": []}


@pytest.fixture(scope="module")
def red_frame(tmp_path_factory):
    """A grey frame with a red square: the 'cat'."""
    root = tmp_path_factory.mktemp("box-frames")
    pixels = np.full((150, 200, 3), 128, np.uint8)
    x, y, w, h = RED
    pixels[y:y + h, x:x + w] = (220, 20, 20)
    Image.fromarray(pixels).save(root / "red.png")
    (root / "broken.jpg").write_bytes(b"nope")
    return root


class RednessScorer:
    """Controlled scores: a crop's share of red pixels for the prompt 'a photo of a cat',
    its complement for any other prompt."""

    def __init__(self, prompts):
        self.prompts = prompts

    def score_images(self, images):
        rows = []
        for image in images:
            a = np.asarray(image.convert("RGB"), np.int16)
            red = float(((a[..., 0] > 180) & (a[..., 1] < 60)).mean())
            rows.append([red if p == "a photo of a cat" else 1 - red for p in self.prompts])
        return np.array(rows, np.float32)


def test_verify_keeps_the_right_box_and_drops_the_wrong_one_with_its_reason(red_frame, tmp_path):
    right, wrong = ("cat", 0.6, RED), ("cat", 0.9, (165, 112, 30, 35))  # the wrong one scores higher in detection
    frames = pd.DataFrame([frame_rows(red_frame / "red.png", [right, wrong]),
                           frame_rows(red_frame / "red.png", [], index=1),
                           frame_rows(red_frame / "broken.jpg", [right], index=2)])
    made = []

    def factory(prompts):
        made.append(prompts)
        return RednessScorer(prompts)

    table, record = verify_frames(frames, factory, VERIFY, VideoCache(tmp_path / "cache", {}))
    rows = table.to_pylist()
    assert made == [["a photo of a cat", "a photo of a face"]]  # the scorer made once, with the template
    assert rows[0]["bbox"] == [list(RED)] and rows[0]["verify_score"] == [1.0]
    dropped = rows[0]["dropped"][0]
    assert dropped["category"] == "cat" and dropped["bbox"] == [165, 112, 30, 35]
    assert dropped["reason"] == "crop scored 0.0000 for 'a photo of a cat', under detection.verify_threshold 0.5"
    assert [r["kept"] for r in rows] == [True, True, False]  # a frame left without boxes stays: a negative
    assert rows[2]["reason"] == "unreadable image" and not rows[1]["has_detections"]
    assert record["detections"] == {"cat": 1, "face": 0} and record["dropped"] == {"cat": 1, "face": 0}
    FRAME.write(tmp_path / "verify.parquet", table, record)  # the schema holds
    # a second run takes every video from the cache; other boxes are computed anew
    made.clear()
    again, _ = verify_frames(frames, factory, VERIFY, VideoCache(tmp_path / "cache", {}))
    assert made == [] and again.equals(table)
    moved = frames.copy()
    moved.at[0, "bbox"] = [list(map(float, RED)), [0.0, 0.0, 10.0, 10.0]]
    verify_frames(moved, factory, VERIFY, VideoCache(tmp_path / "cache", {}))
    assert len(made) == 1


def test_decide_with_scores_by_hand():
    frames = pd.DataFrame([{"category": ["cat", "face"], "score": [0.9, 0.4], "bbox": [[0, 0, 1, 1], [1, 1, 2, 2]]}])
    table = decide(frames, [[0.02, 0.009]], threshold=0.01, template="a photo of a {}")
    assert table["category"][0] == ["cat"] and table["verify_score"][0] == [0.02]
    assert [d["category"] for d in table["dropped"][0]] == ["face"] and table["kept"][0]


def test_crops_take_padding_and_stay_inside_the_frame():
    image = Image.new("RGB", (100, 50))
    assert crop_box(image, (10, 10, 20, 10), 0.5).size == (40, 20)
    assert crop_box(image, (90, 40, 20, 20), 0.5).size == (20, 20)  # 80..100, 30..50: cut at the edges
    assert crop_box(image, (99.5, 49.5, 0.1, 0.1), 0).size == (1, 1)


def test_verify_scores_crops_with_the_filters_siglip2(tiny_models, red_frame, tmp_path):
    from video_miner.models import SiglipScorer

    frames = pd.DataFrame([frame_rows(red_frame / "red.png", [("cat", 0.6, RED), ("face", 0.5, (0, 0, 30, 30))])])
    table, record = verify_frames(frames, lambda prompts: SiglipScorer(str(tiny_models["siglip2"]), CPU, prompts),
                                  {**VERIFY, "verify_threshold": 0.0}, VideoCache(tmp_path / "cache", {}))
    scores = table.column("verify_score").to_pylist()[0]
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
    assert record["verify_scores"]["boxes"] == 2


def test_verify_is_on_with_the_filter_by_default_and_segment_reads_it():
    def config(**kw):
        base = {"detection": {"enabled": True, "verify": "auto"}, "filter": {"enabled": True},
                "segment": {"enabled": False}, "dedup": {"enabled": False}, "video_dedup": {"enabled": False},
                "shots": {"enabled": False}}
        for key, value in kw.items():
            base[key] = {**base[key], **value}
        return base

    assert verify_enabled(config()) and not verify_enabled(config(filter={"enabled": False}))
    assert verify_enabled(config(filter={"enabled": False}, detection={"verify": True}))
    assert not verify_enabled(config(detection={"verify": False}))
    assert not verify_enabled(config(detection={"enabled": False}))
    on = config(segment={"enabled": True})
    assert [s.name for s in enabled_stages(on)][-3:] == ["detect", "verify", "segment"]
    assert upstream("segment", on).name == "verify" and upstream("verify", on).name == "detect"
    assert box_stage(on).name == "segment" and box_stage(config()).name == "verify"
    assert upstream("segment", config(segment={"enabled": True}, detection={"verify": False})).name == "detect"


@pytest.fixture(scope="module")
def segmented(tiny_models, red_frame, tmp_path_factory):
    boxes = [("cat", 0.9, RED), ("face", 0.7, (0.5, 0.5, 60.2, 40.7)), ("cat", 0.4, (150, 120, 49.5, 29.5))]
    frames = pd.DataFrame([frame_rows(red_frame / "red.png", boxes, video=v, index=i)
                           for v in ("a", "b") for i in range(3)]
                          + [frame_rows(red_frame / "red.png", [], video="c"),
                             frame_rows(red_frame / "broken.jpg", boxes[:1], video="c", index=1)])
    made = []

    def factory():
        made.append(1)
        return SamSegmenter(str(tiny_models["sam"]), CPU, batch_size=2)

    table, record = segment_frames(frames, factory, ["cat", "face"],
                                   VideoCache(tmp_path_factory.mktemp("cache"), {}))
    return frames, table.to_pandas(), record, made


def test_segment_masks_are_rle_inside_their_boxes_with_their_areas(segmented):
    frames, table, record, made = segmented
    assert made == [1]  # SAM loaded once for the shard
    assert table["kept"].tolist() == [True] * 7 + [False] and table["reason"].iloc[-1] == "unreadable image"
    assert record["masks"] == 3 * 6 and len(table["segmentation"][6]) == 0  # a frame without boxes
    for row in table[table["kept"]].itertuples():
        assert len(row.segmentation) == len(row.bbox) == len(row.mask_area) == len(row.mask_score)
        for counts, area, box in zip(row.segmentation, row.mask_area, row.bbox):
            mask = decode_mask(counts, row.width, row.height)
            assert mask.shape == (row.height, row.width) and mask.sum() == area
            if area:
                ys, xs = np.nonzero(mask)
                x, y, w, h = box
                assert xs.min() >= x - 1 and xs.max() <= x + w + 1 and ys.min() >= y - 1 and ys.max() <= y + h + 1
    assert box_pixels((0.5, 0.5, 60.2, 40.7), 200, 150) == (0, 0, 61, 42)


def test_segment_masks_make_coco_that_pycocotools_evaluates(segmented):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _, table, _, _ = segmented
    frames = table[table["kept"]].assign(split="train")
    coco = build_coco(frames, ["cat", "face"])
    masked = [a for a in coco["annotations"] if a["area"] > 0]
    assert masked and all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"])
    assert all(a["segmentation"]["size"] == [150, 200] for a in coco["annotations"])
    ground_truth = COCO()
    ground_truth.dataset = coco
    ground_truth.createIndex()
    results = ground_truth.loadRes([{k: v for k, v in a.items() if k != "bbox"} for a in masked])
    for annotation in results.loadAnns(results.getAnnIds()):  # loadRes recomputes area and box from the mask
        assert annotation["area"] == next(a["area"] for a in masked if a["id"] == annotation["id"])
    evaluation = COCOeval(ground_truth, results, "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] > 0.5  # the masks against themselves (empty ones are not in the results)


def test_points_are_coco_keypoints_apart_from_the_boxes(tmp_path):
    from pycocotools.coco import COCO

    frames = pd.DataFrame([{**frame_rows("a.jpg", [("cat", 1.0, (1, 2, 3, 4))]), "split": "val",
                            "points": [{"category": "face", "x": 10.0, "y": 20.5}]}])
    points = build_points_coco(frames, ["cat", "face"])
    assert points["annotations"] == [{"id": 1, "image_id": 1, "category_id": 2, "keypoints": [10.0, 20.5, 2],
                                      "num_keypoints": 1, "iscrowd": 0}]
    assert points["categories"][1]["keypoints"] == ["point"]
    boxes = build_coco(frames, ["cat", "face"])
    assert [a["category_id"] for a in boxes["annotations"]] == [1]  # the point is no box
    (tmp_path / "points.json").write_text(__import__("json").dumps(points))
    assert COCO(str(tmp_path / "points.json")).getAnnIds(catIds=[2]) == [1]


def test_config_names_what_verify_and_segment_need(tmp_path):
    from video_miner.config import ConfigValidationError, check_config
    from video_miner.defaults import SCHEMA_PATH

    with pytest.raises(ConfigValidationError) as error:
        check_config({"segment": {"enabled": True, "model": str(tmp_path / "no-sam")},
                      "detection": {"verify_template": "a {0} of a {}"}}, SCHEMA_PATH, tmp_path)
    message = str(error.value)
    assert "segment.enabled: masks are drawn for the boxes, so it needs detection.enabled: true" in message
    assert "segment.model:" in message and "detection.verify_template: 'a {0} of a {}' must hold {}" in message
    check_config({"detection": {"enabled": True, "backend": "dinox", "classes": ["cat"], "model": "DINO-X-1.0"}},
                 SCHEMA_PATH, tmp_path)  # an API's model name is no folder
