"""What the user takes home: the final frame set, COCO annotations (all splits and one
file per split), an imagefolder dataset with split folders and drawn visualisations.
YOLO and Label Studio exports: :mod:`video_miner.yolo`, :mod:`video_miner.labelstudio`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from video_miner import framestore
from video_miner.blur import blurred, export_frame
from video_miner.fsutil import atomic_dir, safe_name, write_json_atomic
from video_miner.provenance import PROVENANCE_FIELDS
from video_miner.tables.frame import FRAME


def final_frames(paths: Sequence[str], videos: Sequence[str] | None = None) -> pd.DataFrame:
    """The frames that make the dataset: the kept rows of the last enabled frame stage
    (with its boxes when that is detection), of ``videos`` only when given (duplicates
    stay extracted: with every model stage off, the last frame stage still holds them)."""
    return FRAME.read_kept(list(paths), videos=videos)


def image_name(video_id: str, frame_index: int, path: str) -> str:
    """Where a frame lives inside its split's folder of the dataset."""
    return f"images/{safe_name(video_id)}/{int(frame_index):08d}{Path(path).suffix.lower()}"


def dataset_file_name(split: str, video_id: str, frame_index: int, path: str) -> str:
    """Where a frame lives inside the dataset, ``<split>/images/<video>/<frame>.<ext>``:
    the COCO ``file_name`` (relative to ``results/dataset``)."""
    return f"{safe_name(split)}/{image_name(video_id, frame_index, path)}"


# Text the captions and audio stages add to a frame: in the dataset's metadata and as
# extra fields of COCO images, when the stage ran.
TEXT_COLUMNS = ("caption", "transcript")


def with_text(frames: pd.DataFrame, captions: pd.DataFrame | None = None,
              segments: pd.DataFrame | None = None) -> pd.DataFrame:
    """``frames`` with a ``caption`` column (``captions``: the captions tables' rows) and a
    ``transcript`` column (``segments``: the audio segments; the segment covering each
    frame's time), each only when given; None where a frame has none."""
    frames = frames.copy()
    if captions is not None:
        made = captions[(captions["target"] == "frame") & captions["kept"].astype(bool)]
        text = {(v, int(i)): t for v, i, t in zip(made["video_id"], made["frame_index"], made["caption"])}
        frames["caption"] = [text.get((v, int(i))) for v, i in zip(frames["video_id"], frames["frame_index"])]
    if segments is not None:
        from video_miner.texts import frame_transcripts

        frames["transcript"] = frame_transcripts(segments, frames)
    return frames


def with_provenance(frames: pd.DataFrame, videos: dict[str, dict]) -> pd.DataFrame:
    """``frames`` with their videos' provenance columns (``videos``:
    :func:`video_miner.provenance.video_provenance`); empty where a video has none."""
    frames = frames.copy()
    for name in PROVENANCE_FIELDS:
        frames[name] = [videos.get(v, {}).get(name) for v in frames["video_id"]]
    return frames


def _coco_image(image_id: int, row, regions: dict[str, list] | None = None) -> dict:
    text = {c: _text(getattr(row, c)) for c in (*TEXT_COLUMNS, *PROVENANCE_FIELDS) if hasattr(row, c)}
    # With privacy on, the regions blurred in the image (the dataset's file): an extra field.
    privacy = {} if regions is None else {"blurred_regions": float_boxes(regions.get(row.frame_id, []))}
    return {
        "id": image_id,
        "file_name": dataset_file_name(row.split, row.video_id, row.frame_index, row.path),
        "width": int(row.width),
        "height": int(row.height),
        "split": row.split,
        "video_id": row.video_id,
        "frame_index": int(row.frame_index),
        "timestamp_s": float(row.timestamp_s),
        **text,
        **privacy,
    }


def build_coco(frames: pd.DataFrame, classes: Sequence[str], info: dict | None = None,
               regions: dict[str, list] | None = None) -> dict:
    """A COCO detection file of the split frames (``frames``: the kept rows of the split
    table): every frame is an image (with or without boxes) with its ``split``,
    categories in config order with ids from 1, boxes as xywh with scores. With masks
    (the segment stage), each annotation has its ``segmentation`` as RLE (``counts`` a
    string) and its ``area`` is the mask's; without, the box's. ``regions``: with privacy
    on, the regions blurred per frame id, as each image's ``blurred_regions``."""
    categories = [{"id": i + 1, "name": c, "supercategory": "object"} for i, c in enumerate(classes)]
    category_ids = {c: i + 1 for i, c in enumerate(classes)}
    with_masks = "segmentation" in frames.columns
    images, annotations = [], []
    for row in frames.itertuples(index=False):
        image_id = len(images) + 1
        images.append(_coco_image(image_id, row, regions))
        masks = zip(row.segmentation, row.mask_area) if with_masks else [(None, None)] * len(row.bbox)
        for category, score, box, (counts, mask_area) in zip(row.category, row.score, row.bbox, masks):
            x, y, w, h = (round(float(v), 2) for v in box)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[category],
                "bbox": [x, y, w, h],
                "area": round(w * h, 2) if counts is None else float(mask_area),
                "score": round(float(score), 4),
                "iscrowd": 0,
            }
            if counts is not None:
                annotation["segmentation"] = {"size": [int(row.height), int(row.width)], "counts": str(counts)}
            annotations.append(annotation)
    return _coco_file("video-miner detections", images, annotations, categories, info)


def _coco_file(description: str, images: list, annotations: list, categories: list, info: dict | None) -> dict:
    return {
        "info": {"description": description, **(info or {})},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def build_points_coco(frames: pd.DataFrame, classes: Sequence[str], info: dict | None = None,
                      regions: dict[str, list] | None = None) -> dict:
    """The split frames' points as COCO keypoints, apart from the boxes (a point is no
    box): the same images as :func:`build_coco`, each category with one keypoint
    (``point``), one annotation per point with ``keypoints`` ``[x, y, 2]`` and
    ``num_keypoints`` 1 (no bbox: the point is all a backend gave); ``regions`` as there."""
    categories = [{"id": i + 1, "name": c, "supercategory": "object", "keypoints": ["point"], "skeleton": []}
                  for i, c in enumerate(classes)]
    category_ids = {c: i + 1 for i, c in enumerate(classes)}
    images, annotations = [], []
    for row in frames.itertuples(index=False):
        image_id = len(images) + 1
        images.append(_coco_image(image_id, row, regions))
        for point in (row.points if "points" in frames.columns else []):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[point["category"]],
                "keypoints": [round(float(point["x"]), 2), round(float(point["y"]), 2), 2],
                "num_keypoints": 1,
                "iscrowd": 0,
            })
    return _coco_file("video-miner points", images, annotations, categories, info)


def coco_split(coco: dict, split: str) -> dict:
    """The part of a COCO file in one split, with the same image and annotation ids (a
    split without images is a valid, empty file)."""
    images = [image for image in coco["images"] if image["split"] == split]
    ids = {image["id"] for image in images}
    return {**coco, "info": {**coco["info"], "split": split}, "images": images,
            "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}


# ``metadata.parquet`` of each split: an explicit schema, so every split (one without any
# box, one whose titles are all unknown) has the same features for ``datasets``.
METADATA_FIELDS = [
    pa.field("file_name", pa.string(), nullable=False),
    pa.field("frame_id", pa.string(), nullable=False),
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("title", pa.string()),
    # A clip from an archive: the video it was cut from and where (its CSV's), else empty.
    pa.field("source_video_id", pa.string()),
    pa.field("source_start_s", pa.float64()),
    pa.field("source_end_s", pa.float64()),
    # Provenance as the site gave it (empty for local files and archives) and the run id.
    *(pa.field(name, pa.string()) for name in PROVENANCE_FIELDS if name != "source"),
]
# The download table's columns a frame's metadata carries.
PROVENANCE = ["location", "title", "source_video_id", "source_start_s", "source_end_s"]
class FrameExportInputs(NamedTuple):
    """What a frame export (dataset, WebDataset) writes from."""

    frames: pd.DataFrame  # the split frames, with their captions and transcripts when made
    videos: dict[str, dict]  # each video's download columns and provenance, by id
    provenance: dict[str, dict]  # the provenance of the videos that have frames (the manifest's)
    regions: dict[str, list] | None  # with privacy on, the regions to blur per frame id


def frame_export_inputs(split_table, download_tables: Sequence[str], run_id: str, captions: Sequence[str] = (),
                        segments: Sequence[str] = (), privacy: Sequence[str] = ()) -> FrameExportInputs:
    """Read what a frame export needs: the split frames with their texts, each video's
    download row and provenance (tables written before archives were inputs lack some
    columns: empty), and the privacy regions when privacy is on."""
    from video_miner.blur import read_regions
    from video_miner.provenance import video_provenance
    from video_miner.splits import split_frames
    from video_miner.tables.video import VIDEO
    from video_miner.texts import read_captions, read_segments

    downloads = VIDEO.read(list(download_tables))
    provenance = video_provenance(downloads, run_id)
    rows = downloads.reindex(columns=["video_id", *PROVENANCE]).set_index("video_id").to_dict("index")
    frames = with_text(split_frames(split_table), read_captions(captions) if captions else None,
                       read_segments(segments) if segments else None)
    return FrameExportInputs(
        frames=frames,
        videos={v: {**row, **provenance[v]} for v, row in rows.items()},
        provenance={v: provenance[v] for v in sorted(set(frames["video_id"])) if v in provenance},
        regions=read_regions(privacy) if privacy else None)


OBJECTS_FIELD = pa.field("objects", pa.struct([
    pa.field("bbox", pa.list_(pa.list_(pa.float32(), 4))),
    pa.field("category", pa.list_(pa.string())),
    pa.field("score", pa.list_(pa.float32())),
]))


# With privacy on: the regions blurred in each image (xywh pixels, empty when none).
BLURRED_FIELD = pa.field("blurred_regions", pa.list_(pa.list_(pa.float32(), 4)))


def write_dataset(out_dir: str | os.PathLike, frames: pd.DataFrame, videos: dict[str, dict],
                  regions: dict[str, list] | None = None) -> dict:
    """``out_dir`` as a Hugging Face imagefolder with split folders: ``<split>/images/
    <video>/<frame>.<ext>`` (hard links to the frames, copies where links cannot be made)
    and ``<split>/metadata.parquet`` with the source video and its provenance, timestamp, the ``caption`` and
    ``transcript`` when ``frames`` have them (:func:`with_text`) and (when ``frames`` have
    boxes) the objects (bbox xywh, category, score). ``frames``: the kept rows of the
    split table. A split without frames has no folder (``datasets`` cannot load an empty
    one). ``videos``: download rows by id. ``regions``: with privacy on, the regions to
    blur per frame id (:mod:`video_miner.privacy`), recorded as ``blurred_regions``."""
    with_boxes = "category" in frames.columns
    texts = [c for c in TEXT_COLUMNS if c in frames.columns]
    schema = pa.schema(METADATA_FIELDS + [pa.field(c, pa.string()) for c in texts]
                       + ([OBJECTS_FIELD] if with_boxes else []) + ([BLURRED_FIELD] if regions is not None else []))
    written, missing, per_split = 0, [], {}
    with atomic_dir(out_dir) as tmp:
        for split, rows in frames.groupby("split", sort=True):
            lines = []
            for row in rows.itertuples(index=False):
                if not framestore.exists(row.path):  # deleted by hand since: said, not hidden
                    missing.append(row.path)
                    continue
                name = image_name(row.video_id, row.frame_index, row.path)
                blur = (regions or {}).get(row.frame_id, [])
                export_frame(row.path, Path(tmp, safe_name(split), name), blur)
                video = videos.get(row.video_id, {})
                line = {
                    "file_name": name,
                    "frame_id": row.frame_id,
                    "video_id": row.video_id,
                    "frame_index": int(row.frame_index),
                    "timestamp_s": float(row.timestamp_s),
                    "source": _text(video.get("location")),
                    "title": _text(video.get("title")),
                    "source_video_id": _text(video.get("source_video_id")),
                    "source_start_s": _number(video.get("source_start_s")),
                    "source_end_s": _number(video.get("source_end_s")),
                    **{f: _text(video.get(f)) for f in PROVENANCE_FIELDS if f != "source"},
                    **{c: _text(getattr(row, c)) for c in texts},
                }
                if with_boxes:
                    line["objects"] = frame_objects(row)
                if regions is not None:
                    line["blurred_regions"] = float_boxes(blur)
                lines.append(line)
            if lines:
                table = pa.Table.from_pylist(lines, schema=schema)
                pq.write_table(table, Path(tmp, safe_name(split), "metadata.parquet"))
            per_split[split] = len(lines)
            written += len(lines)
    return {"images": written, "splits": per_split, "missing": missing}


def float_boxes(boxes) -> list[list[float]]:
    """Boxes or regions (xywh) as plain lists of floats."""
    return [[float(v) for v in box] for box in boxes]


def frame_objects(row) -> dict:
    """A frame's boxes as the dataset and the WebDataset carry them."""
    return {"bbox": float_boxes(row.bbox), "category": [str(c) for c in row.category],
            "score": [float(s) for s in row.score]}


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _colour(index: int) -> tuple[int, int, int]:
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
    return palette[index % len(palette)]


def draw_detections(path: str, boxes: Sequence, categories: Sequence[str], scores: Sequence[float],
                    classes: Sequence[str], regions: Sequence[Sequence[float]] = ()) -> Image.Image:
    """The frame with its boxes drawn, on the frame blurred in ``regions`` (privacy)."""
    with framestore.open_image(path) as source:
        image = blurred(source, regions) if len(regions) else source.convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, image.height // 30))
    width = max(2, image.height // 200)
    for (x, y, w, h), category, score in zip(boxes, categories, scores):
        colour = _colour(list(classes).index(category) if category in classes else 0)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        label = f"{category} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        top_y = max(0, y - (bottom - top) - 2)
        draw.rectangle([x, top_y, x + (right - left) + 4, top_y + (bottom - top) + 2], fill=colour)
        draw.text((x + 2, top_y), label, fill=(0, 0, 0), font=font)
    return image


def write_visualizations(out_dir: str | os.PathLike, detections: pd.DataFrame, classes: Sequence[str],
                         max_images: int, regions: dict[str, list] | None = None) -> int:
    """Frames with boxes drawn: those with detections, highest-scoring first, at most
    ``max_images``; named after the frame id. ``regions``: with privacy on, the regions
    to blur per frame id (the drawings are shared like the exports)."""
    with_boxes = detections[detections["has_detections"]]
    top = with_boxes.assign(_best=with_boxes["score"].map(lambda s: float(np.max(s))))
    top = top.sort_values(["_best", "frame_id"], ascending=[False, True]).head(max_images)
    with atomic_dir(out_dir) as tmp:
        for row in top.itertuples(index=False):
            image = draw_detections(row.path, row.bbox, row.category, row.score, classes,
                                    (regions or {}).get(row.frame_id, []))
            image.save(Path(tmp, safe_name(row.frame_id.replace("/", "_")) + ".jpg"), quality=90)
    return len(top)


def write_coco(path: str | os.PathLike, coco: dict) -> None:
    write_json_atomic(path, coco)
