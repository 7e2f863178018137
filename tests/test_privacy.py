"""Privacy: which regions are blurred (controlled boxes), a real face found by the
shipped cascade, and exports where only the regions differ from the originals."""


import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from video_miner.framestore import TarPacker
from video_miner.blur import export_frame
from video_miner.privacy import PrivacySettings, frame_regions, merged, padded, privacy_table

SETTINGS = PrivacySettings(classes=("face", "licence plate"), padding=0.1, min_score=0.3)


def test_regions_are_privacy_classes_above_the_score_padded_clipped_and_merged():
    boxes = [[10, 10, 20, 20], [25, 25, 20, 20], [90, 40, 20, 10], [50, 5, 10, 10], [0, 60, 10, 10]]
    categories = ["face", "Face", "license plate", "cat", "face"]
    scores = [0.9, 0.8, 0.5, 0.99, 0.1]
    regions, classes, sources = frame_regions(boxes, categories, scores, ["detection"] * 5, 100, 80, SETTINGS)
    # the two faces overlap: one union (8..47 after 10% padding); the plate is clipped at
    # the right edge (spelt license/licence alike); the cat and the low-score face are left
    assert regions == [[8.0, 8.0, 39.0, 39.0], [88.0, 39.0, 12.0, 12.0]]
    assert classes == ["face", "license plate"] and sources == ["detection", "detection"]
    assert padded([0, 0, 10, 10], 0.5, 8, 8) == [0.0, 0.0, 8.0, 8.0]
    assert padded([200, 200, 10, 10], 0.1, 100, 100) is None
    # a chain of overlaps merges transitively; apart ones stay apart
    chain = [([0, 0, 10, 10], "a", "s"), ([20, 0, 10, 10], "b", "s"), ([9, 0, 12, 2], "c", "s"),
             ([50, 50, 1, 1], "d", "s")]
    assert [r[0] for r in merged(chain)] == [[0, 0, 30, 10], [50, 50, 1, 1]]


def _astronaut_jpeg(tmp_path):
    from skimage import data

    path = tmp_path / "frames" / "v" / "00000000.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(path, quality=90)
    return path


def test_a_real_face_is_found_and_only_it_is_blurred_in_the_export(tmp_path):
    """astronaut(): the shipped frontal-face cascade finds the face; the export differs
    from the original inside the region (strongly) and outside only by the JPEG
    re-encoding (decoded, within a tight tolerance); a frame without regions is the same
    file; packed frames blur the same."""
    path = _astronaut_jpeg(tmp_path)
    plain = tmp_path / "frames" / "v" / "00000001.jpg"
    Image.new("RGB", (64, 48), (10, 120, 30)).save(plain)
    frames = pd.DataFrame({"video_id": ["v", "v"], "frame_index": [0, 1], "frame_id": ["v/00000000", "v/00000001"],
                           "timestamp_s": [0.0, 1.0], "width": [512, 64], "height": [512, 48],
                           "path": [str(path), str(plain)]})
    table = privacy_table(frames, PrivacySettings(classes=("face",)), threads=1)
    assert table["kept"].all() and table["region_source"].iloc[0] == ["cascade"]
    regions = table["regions"].iloc[0]
    # The astronaut's face (about x 176-272, y 66-162) lies inside a region (the cascade
    # also fires, weaker, on the suit beside it: over-blurring is the safe side).
    assert any(x <= 176 and y <= 66 and x + w >= 272 and y + h >= 162 for x, y, w, h in regions)
    assert table["regions"].iloc[1] == []

    export_frame(str(path), tmp_path / "out" / "a.jpg", regions)
    export_frame(str(plain), tmp_path / "out" / "b.jpg", [])
    assert (tmp_path / "out" / "b.jpg").read_bytes() == plain.read_bytes()
    original = np.asarray(Image.open(path), np.int16)
    exported = np.asarray(Image.open(tmp_path / "out" / "a.jpg"), np.int16)
    inside, ring = np.zeros(original.shape[:2], bool), np.zeros(original.shape[:2], bool)
    for x, y, w, h in (map(int, r) for r in regions):
        inside[y:y + h, x:x + w] = True
        ring[max(0, y - 16):y + h + 16, max(0, x - 16):x + w + 16] = True  # with the 8x8 blocks at its edge
    diff = np.abs(original - exported).max(axis=2)
    assert diff[inside].mean() > 15  # blurred beyond recognition
    # Outside: JPEG re-encoding only.
    assert diff[~ring].mean() < 2.0 and np.percentile(diff[~ring], 99.9) <= 16

    with TarPacker(tmp_path / "packed", 1 << 20) as packer:
        packed = packer.add("v/00000000.jpg", path.read_bytes())
    export_frame(packed, tmp_path / "out" / "c.jpg", regions)
    assert (tmp_path / "out" / "c.jpg").read_bytes() == (tmp_path / "out" / "a.jpg").read_bytes()


def test_detections_of_a_privacy_class_are_used_and_the_rest_found_by_cascades(tmp_path, monkeypatch):
    from video_miner import privacy

    calls = []

    class Finder:
        def __init__(self, classes, threads=2):
            calls.append(list(classes))

        def find(self, paths):
            return [([[0.0, 0.0, 4.0, 2.0]], ["license plate"], [0.9]), None]

    monkeypatch.setattr(privacy, "CascadeFinder", Finder)
    frames = pd.DataFrame({"video_id": ["v", "v"], "frame_index": [0, 1], "frame_id": ["v/0", "v/1"],
                           "timestamp_s": [0.0, 1.0], "width": [100, 100], "height": [100, 100],
                           "path": ["a.jpg", "b.jpg"], "bbox": [[[50.0, 50.0, 10.0, 10.0]], []],
                           "category": [["face"], []], "score": [[0.6], []]})
    table = privacy_table(frames, SETTINGS, detected_classes=["face", "cat"])
    assert calls == [["licence plate"]]  # the detections cover faces: cascades for the plates only
    assert table["regions"].iloc[0] == [[49.0, 49.0, 12.0, 12.0], [0.0, 0.0, 5.0, 3.0]]
    assert table["region_source"].iloc[0] == ["detection", "cascade"]
    assert not table["kept"].iloc[1] and "unreadable frame b.jpg" in table["reason"].iloc[1]


def test_the_dataset_export_records_the_blurred_regions(tmp_path):
    from video_miner.export import write_dataset

    path = _astronaut_jpeg(tmp_path)
    frames = pd.DataFrame({"video_id": ["v"], "frame_index": [0], "frame_id": ["v/00000000"], "timestamp_s": [0.0],
                           "width": [512], "height": [512], "path": [str(path)], "split": ["train"]})
    write_dataset(tmp_path / "ds", frames, {}, {"v/00000000": [[10.0, 10.0, 50.0, 50.0]]})
    metadata = pq.read_table(tmp_path / "ds" / "train" / "metadata.parquet").to_pylist()
    assert metadata[0]["blurred_regions"] == [[10.0, 10.0, 50.0, 50.0]]
    exported = tmp_path / "ds" / "train" / metadata[0]["file_name"]
    assert exported.stat().st_ino != path.stat().st_ino and exported.read_bytes() != path.read_bytes()
    assert path.read_bytes() == (tmp_path / "frames" / "v" / "00000000.jpg").read_bytes()  # original intact
