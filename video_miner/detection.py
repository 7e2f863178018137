"""Open-set object detection behind one interface: ``detect(paths) -> boxes per image``.

Every backend returns, per image, an ``(n, 6)`` float32 array of ``x0, y0, x1, y1,
score, class_index`` in pixels of the original frame (``None`` for an unreadable image);
thresholding, clipping, per-class NMS and the per-image cap are shared. Backends:
Grounding DINO, OWLv2 / OWL-ViT (transformers zero-shot detection), Florence-2 (native
transformers class, phrase grounding) and OpenCV Haar cascades (weights ship with
``opencv-python-headless<5``: offline and CPU-only). A new backend is one class
registered in ``DETECTORS``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.defaults import section_defaults
from video_miner.logs import Progress
from video_miner.models import ModelSettings, Registry, _batches, load_hf_model, load_image, prefetch, to_device
from video_miner.shardjob import Lazy, VideoCache, cached_frame_results
from video_miner.stages import API_BACKENDS  # noqa: F401 - the hosted backends, registered below
from video_miner.tables.frame import BOX_FIELDS, FRAME, FRAME_COLUMNS, POINTS_FIELD, UNREADABLE

_DETECTION_DEFAULTS = section_defaults("detection")
_OPENCV_DEFAULTS = section_defaults("detection", "opencv")
# Backend name -> Detector class, created as ``cls(settings, model_settings)``.
DETECTORS = Registry("detection backend")
HAAR_HALF_SCORE_WINDOWS = 10
# Class name -> cascade file shipped in cv2.data.haarcascades.
HAAR_CASCADES = {
    "face": "haarcascade_frontalface_default.xml",
    "profile face": "haarcascade_profileface.xml",
    "cat face": "haarcascade_frontalcatface_extended.xml",
    "person": "haarcascade_fullbody.xml",
    "full body": "haarcascade_fullbody.xml",
    "upper body": "haarcascade_upperbody.xml",
    "lower body": "haarcascade_lowerbody.xml",
    "licence plate": "haarcascade_russian_plate_number.xml",
    "license plate": "haarcascade_russian_plate_number.xml",
    "eye": "haarcascade_eye.xml",
    "smile": "haarcascade_smile.xml",
}


@dataclass(frozen=True)
class DetectionSettings:
    backend: str = _DETECTION_DEFAULTS["backend"]
    model: str | None = None
    classes: tuple[str, ...] = ()
    threshold: float = _DETECTION_DEFAULTS["threshold"]
    text_threshold: float = _DETECTION_DEFAULTS["text_threshold"]
    nms_iou: float = _DETECTION_DEFAULTS["nms_iou"]
    max_per_image: int = _DETECTION_DEFAULTS["max_per_image"]
    max_new_tokens: int = _DETECTION_DEFAULTS["max_new_tokens"]  # Florence-2 generation length
    opencv: dict = field(default_factory=dict)
    moondream: dict = field(default_factory=dict)  # the hosted backends' sections (endpoint, key_env, ...)
    dinox: dict = field(default_factory=dict)
    api: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict) -> "DetectionSettings":
        values = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        values["classes"] = tuple(section.get("classes", ()))
        backend = section.get("backend", cls.backend)
        values["model"] = section.get("model") or DETECTORS.get(backend).default_model
        return cls(**values)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with many."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms_per_class(dets: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression within each class; rows sorted by score, descending."""
    dets = dets[np.argsort(-dets[:, 4], kind="stable")]
    keep = np.ones(len(dets), bool)
    for i in range(len(dets)):
        if not keep[i]:
            continue
        later = np.arange(i + 1, len(dets))
        same = later[keep[later] & (dets[later, 5] == dets[i, 5])]
        if len(same):
            keep[same[box_iou(dets[i], dets[same]) > iou]] = False
    return dets[keep]


def finalize(raw: np.ndarray, width: int, height: int, settings: DetectionSettings) -> np.ndarray:
    """Clip to the frame, drop empty and low-score boxes, NMS per class, cap the count."""
    dets = np.asarray(raw, np.float32).reshape(-1, 6).copy()
    dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, width)
    dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, height)
    ok = (dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1]) & (dets[:, 4] >= settings.threshold)
    return nms_per_class(dets[ok], settings.nms_iou)[: settings.max_per_image]


@dataclass
class Found:
    """What a detector found on one frame: ``boxes`` ``(n, 6)`` (x0, y0, x1, y1, score,
    class index, pixels), ``points`` ``(m, 3)`` (x, y, class index; only backends asked
    for points give any), or the ``error`` of a hosted backend's request (the frame is not
    kept, and a rerun asks again)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"error": self.error}
        return {"boxes": np.asarray(self.boxes, np.float32).tolist(),
                "points": np.asarray(self.points, np.float32).tolist()}

    @classmethod
    def from_json(cls, item: dict | list) -> "Found":
        if isinstance(item, list):  # boxes only
            return cls(np.asarray(item, np.float32).reshape(-1, 6))
        if item.get("error") is not None:
            return cls(error=item["error"])
        return cls(np.asarray(item["boxes"], np.float32).reshape(-1, 6),
                   np.asarray(item.get("points", []), np.float32).reshape(-1, 3))


def clip_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points inside the frame only."""
    points = np.asarray(points, np.float32).reshape(-1, 3)
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
    return points[inside]


class Detector:
    """The interface: ``detect(paths)`` gives one ``(n, 6)`` array per image, or None
    where the image cannot be read; ``annotate(paths)`` gives a :class:`Found` per image
    (boxes, points, or a request's error), or None. Backends implement
    ``_predict(images)`` (or override ``annotate``, as the hosted ones)."""

    default_model: str | None = None  # the checkpoint used when detection.model is null

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        if not settings.classes:
            raise ValueError("detection needs at least one class")
        self.settings = settings
        self.model_settings = model_settings
        self.classes = list(settings.classes)

    def _predict(self, images: list[Image.Image]) -> list[np.ndarray]:  # pragma: no cover - per backend
        raise NotImplementedError

    def _load(self, paths: Sequence[str]) -> list[Image.Image | None]:
        return [load_image(p) for p in paths]

    def detect(self, paths: Sequence[str]) -> list[np.ndarray | None]:
        results: list[np.ndarray | None] = []
        batches = _batches(list(paths), self.model_settings.batch_size)
        progress = Progress("frames", len(paths))
        depth = max(2, self.model_settings.num_workers)  # a batch per worker in flight
        for images in prefetch(self._load, batches, self.model_settings.num_workers, depth=depth):
            readable = [im for im in images if im is not None]
            raw = iter(self._predict(readable) if readable else [])
            for image in images:
                results.append(None if image is None else finalize(next(raw), image.width, image.height, self.settings))
            progress.update(len(images))
        return results

    def annotate(self, paths: Sequence[str]) -> list[Found | None]:
        return [None if d is None else Found(d) for d in self.detect(paths)]


class HFDetector(Detector):
    """Loading and device handling shared by the transformers backends."""

    auto_class = "AutoModelForZeroShotObjectDetection"

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        super().__init__(settings, model_settings)
        import torch

        loaded = load_hf_model(settings.model, model_settings, self.auto_class, "AutoProcessor", role="detector")
        self.model, self.processor = loaded.model, loaded.processor
        self.device, self.dtype = loaded.device, loaded.dtype
        self._torch = torch

    def _to_device(self, inputs) -> dict:
        return to_device(inputs, self.device, self.dtype)


def phrase_spans(input_ids: Sequence[int], phrases: Sequence[Sequence[int]]) -> list[list[int]]:
    """Token positions of each phrase in the prompt, found in order (as Grounding DINO's
    positive map)."""
    ids = list(input_ids)
    spans, start = [], 0
    for phrase in phrases:
        phrase = list(phrase)
        for pos in range(start, len(ids) - len(phrase) + 1):
            if phrase and ids[pos : pos + len(phrase)] == phrase:
                spans.append(list(range(pos, pos + len(phrase))))
                start = pos + len(phrase)
                break
        else:
            raise ValueError(f"class {len(spans) + 1} of {len(phrases)} does not fit in the model's text "
                             f"length ({len(ids)} tokens); use fewer or shorter classes")
    return spans


@DETECTORS.register("grounding_dino")
class GroundingDinoDetector(HFDetector):
    """Grounding DINO: the classes form one prompt ("cat . dog ."). As in the reference
    implementation a box is kept when its best token probability reaches ``threshold``
    (the box threshold); its class is the phrase with the highest token probability,
    which must reach ``text_threshold``."""

    default_model = "IDEA-Research/grounding-dino-base"

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        super().__init__(settings, model_settings)
        self.prompt = " . ".join(c.lower() for c in self.classes) + " ."
        tokenizer = self.processor.tokenizer
        self.phrase_ids = [tokenizer(c.lower(), add_special_tokens=False)["input_ids"] for c in self.classes]

    def _predict(self, images):
        torch = self._torch
        inputs = self.processor(images=images, text=[self.prompt] * len(images), return_tensors="pt", padding=True)
        spans = phrase_spans(inputs["input_ids"][0].tolist(), self.phrase_ids)
        with torch.inference_mode():
            out = self.model(**self._to_device(inputs))
        probs = out.logits.float().sigmoid().cpu()  # (images, queries, text tokens)
        # Logits cover max_text_len positions; only the prompt's real tokens count.
        token_mask = torch.zeros(probs.shape[0], 1, probs.shape[-1], dtype=torch.bool)
        length = min(inputs["attention_mask"].shape[1], probs.shape[-1])
        token_mask[:, 0, :length] = inputs["attention_mask"][:, :length].bool()
        box_scores = probs.masked_fill(~token_mask, 0).max(-1).values
        class_scores = torch.stack([probs[..., span].max(-1).values for span in spans], -1)
        best_score, best_class = class_scores.max(-1)
        boxes = out.pred_boxes.float().cpu()  # centre x, centre y, w, h relative to the image
        results = []
        for i, image in enumerate(images):
            keep = (box_scores[i] >= self.settings.threshold) & (best_score[i] >= self.settings.text_threshold)
            cx, cy, w, h = boxes[i, keep].unbind(-1)
            xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * torch.tensor(
                [image.width, image.height, image.width, image.height])
            results.append(np.column_stack([xyxy.numpy(), box_scores[i, keep].numpy(), best_class[i, keep].numpy()]))
        return results


@DETECTORS.register("owlv2")
class OwlDetector(HFDetector):
    """OWLv2 and OWL-ViT: one query per class; the processor's post-processing undoes
    OWLv2's square padding."""

    default_model = "google/owlv2-base-patch16-ensemble"

    def _predict(self, images):
        inputs = self.processor(text=[self.classes] * len(images), images=images, return_tensors="pt")
        with self._torch.inference_mode():
            out = self.model(**self._to_device(inputs))
        out.logits, out.pred_boxes = out.logits.float(), out.pred_boxes.float()
        sizes = [(im.height, im.width) for im in images]
        found = self.processor.image_processor.post_process_object_detection(
            out, threshold=self.settings.threshold, target_sizes=sizes)
        return [np.column_stack([r["boxes"].cpu().numpy(), r["scores"].cpu().numpy(), r["labels"].cpu().numpy()])
                for r in found]


def match_class(label: str, classes: Sequence[str]) -> int | None:
    """The configured class a generated phrase names: exact (case and space
    insensitive), else the longest class the phrase contains, else None."""
    norm = lambda s: re.sub(r"\s+", " ", s.strip().lower()).strip(" .")  # noqa: E731
    label = norm(label)
    names = [norm(c) for c in classes]
    if label in names:
        return names.index(label)
    inside = [i for i, n in enumerate(names) if n and n in label]
    return max(inside, key=lambda i: len(names[i])) if inside else None


@DETECTORS.register("florence2")
class Florence2Detector(HFDetector):
    """Florence-2 phrase grounding over the classes ("cat. dog."). It generates boxes
    without confidences: each gets score 1.0, so ``threshold`` does not filter them."""

    default_model = "florence-community/Florence-2-base"
    auto_class = "AutoModelForImageTextToText"
    task = "<CAPTION_TO_PHRASE_GROUNDING>"

    def _predict(self, images):
        text = self.task + ". ".join(self.classes) + "."
        inputs = self._to_device(self.processor(text=[text] * len(images), images=images, return_tensors="pt"))
        # The decoder cannot generate past its position table.
        max_new = min(self.settings.max_new_tokens, self.model.config.text_config.max_position_embeddings - 2)
        with self._torch.inference_mode():
            generated = self.model.generate(**inputs, max_new_tokens=max_new,
                                            do_sample=False, num_beams=1)
        texts = self.processor.batch_decode(generated, skip_special_tokens=False)
        return [self.parse(t, image) for t, image in zip(texts, images)]

    def parse(self, generated: str, image: Image.Image) -> np.ndarray:
        parsed = self.processor.post_process_generation(generated, task=self.task, image_size=image.size)[self.task]
        rows = []
        for box, label in zip(parsed.get("bboxes", []), parsed.get("labels", [])):
            index = match_class(label, self.classes)
            if index is not None:
                rows.append([*box, 1.0, index])
        return np.array(rows, np.float32).reshape(-1, 6)


def cascade_path(name: str) -> Path:
    import cv2

    path = Path(name) if Path(name).suffix == ".xml" and Path(name).exists() else Path(cv2.data.haarcascades, name)
    if not path.is_file():
        raise FileNotFoundError(f"no Haar cascade {name!r} (shipped ones are in {cv2.data.haarcascades})")
    return path


@DETECTORS.register("opencv")
class OpenCVHaarDetector(Detector):
    """Haar cascades (Viola-Jones), one per class. A box's score grows with the number n
    of raw windows that agree on it: n / (n + 10), so 0.5 at ten windows. Clear faces get
    dozens; the cascades' typical false positives only a few, which the default
    threshold (0.3, about 4 windows) drops."""

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        super().__init__(settings, model_settings)
        options = {**_OPENCV_DEFAULTS, **settings.opencv}
        cascades = {**HAAR_CASCADES, **options["cascades"]}
        unknown = [c for c in self.classes if c.lower() not in cascades]
        if unknown:
            raise ValueError(f"the opencv backend has no cascade for {unknown}; known classes: {sorted(cascades)} "
                             "(or map a class to a cascade file in detection.opencv.cascades)")
        self.paths = [cascade_path(cascades[c.lower()]) for c in self.classes]
        self.options = options
        self._local = threading.local()  # a CascadeClassifier must not be shared by threads

    def _cascades(self):
        import cv2

        if not hasattr(self._local, "cascades"):
            self._local.cascades = [cv2.CascadeClassifier(str(p)) for p in self.paths]
        return self._local.cascades

    def _detect_one(self, image: Image.Image | None) -> np.ndarray | None:
        if image is None:
            return None
        import cv2

        grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
        side = max(16, round(self.options["min_size"] * min(grey.shape)))
        rows = []
        for index, cascade in enumerate(self._cascades()):
            boxes, neighbours = cascade.detectMultiScale2(grey, scaleFactor=self.options["scale_factor"],
                                                          minNeighbors=self.options["min_neighbors"],
                                                          minSize=(side, side))
            for (x, y, w, h), n in zip(boxes, neighbours):
                rows.append([x, y, x + w, y + h, n / (n + HAAR_HALF_SCORE_WINDOWS), index])
        return np.array(rows, np.float32).reshape(-1, 6)

    def _load(self, paths):
        return [(im, self._detect_one(im)) for im in super()._load(paths)]

    def detect(self, paths):
        # Cascades run on the loader threads (OpenCV releases the GIL).
        results = []
        progress = Progress("frames", len(paths))
        for batch in prefetch(self._load, _batches(list(paths), 8), self.model_settings.num_workers, depth=4):
            for image, raw in batch:
                results.append(None if image is None else finalize(raw, image.width, image.height, self.settings))
            progress.update(len(batch))
        return results


# The hosted backends (video_miner.detect_api) register themselves in DETECTORS, one class each.
import video_miner.detect_api  # noqa: E402,F401


def __getattr__(name: str):
    if name == "BACKENDS":  # every backend, once the hosted ones (imported last) have registered
        return DETECTORS.names()
    raise AttributeError(name)


def make_detector(settings: DetectionSettings, model_settings: ModelSettings) -> Detector:
    return DETECTORS.create(settings.backend, settings, model_settings)


# --- per-shard detection table -------------------------------------------------------

# The detect table's own columns: a frame is kept when it could be read (frames without
# boxes stay in the dataset as negatives) and its request did not fail; boxes are xywh in
# pixels; points (Moondream's, when asked for) a column of their own.
DETECT_FIELDS = (*BOX_FIELDS, POINTS_FIELD)


def box_columns(boxes: list[np.ndarray], classes: Sequence[str]) -> dict[str, list]:
    """Boxes ``(n, 6)`` per frame as the table's box columns (xywh)."""
    boxes = [np.asarray(b, np.float32).reshape(-1, 6) for b in boxes]
    return {
        "has_detections": [len(b) > 0 for b in boxes],
        "category": [[classes[int(c)] for c in b[:, 5]] for b in boxes],
        "score": [b[:, 4].tolist() for b in boxes],
        "bbox": [np.column_stack([b[:, :2], b[:, 2:4] - b[:, :2]]).round(2).tolist() for b in boxes],
    }


def detections_table(frames: pd.DataFrame, found: list[Found | np.ndarray | None],
                     classes: Sequence[str]) -> pd.DataFrame:
    """One row per frame with its boxes (xywh) and points as list columns."""
    found = [f if f is None or isinstance(f, Found) else Found(np.asarray(f, np.float32).reshape(-1, 6))
             for f in found]
    usable = [f is not None and f.error is None for f in found]
    empty = Found()
    boxes = [f.boxes if ok else empty.boxes for f, ok in zip(found, usable)]
    points = [f.points if ok else empty.points for f, ok in zip(found, usable)]
    return frames[FRAME_COLUMNS].assign(
        kept=usable,
        reason=["" if ok else UNREADABLE if f is None else f.error for f, ok in zip(found, usable)],
        **box_columns(boxes, classes),
        points=[[{"category": classes[int(c)], "x": round(float(x), 2), "y": round(float(y), 2)}
                 for x, y, c in np.asarray(p, np.float32).reshape(-1, 3)] for p in points],
    )


def api_outcomes(frames: pd.DataFrame, found: list[Found | None]) -> dict[str, dict]:
    """Videos with frames whose request failed, as failed videos of the stage (with the
    first reason and how many frames): a rerun asks again for just those frames."""
    failed: dict[str, list[str]] = {}
    for video_id, f in zip(frames["video_id"], found):
        if f is not None and f.error is not None:
            failed.setdefault(video_id, []).append(f.error)
    total = frames["video_id"].value_counts()
    return {v: {"ok": False, "reason": f"{len(errors)} of {int(total[v])} frames not detected: {errors[0]}"}
            for v, errors in failed.items()}


def detect_frames(frames: pd.DataFrame, detector_factory, classes: Sequence[str],
                  cache: VideoCache) -> tuple[pa.Table, dict]:
    """Detect on every frame; the detector (model, or API client) is made once, and only
    for videos not done in an earlier run of this job. A video with a failed request is
    not cached: a rerun asks again for it."""
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    detector = Lazy(detector_factory)

    def detect(part: pd.DataFrame) -> list:
        return [None if f is None else f.to_json() for f in detector().annotate(part["path"].tolist())]

    def complete(items: list) -> bool:
        return not any(isinstance(item, dict) and item.get("error") is not None for item in items)

    per_video = cached_frame_results(cache, frames, detect, complete=complete)
    found = [None if item is None else Found.from_json(item) for results in per_video.values() for item in results]
    table = detections_table(frames, found, classes)
    counts = pd.Series([c for cats in table["category"] for c in cats], dtype="string").value_counts()
    errors = pd.Series([f.error for f in found if f is not None and f.error is not None], dtype="string")
    record = {
        "frames": len(frames),
        "unreadable": int(sum(f is None for f in found)),
        "frames_with_detections": int(table["has_detections"].sum()),
        "detections": {c: int(counts.get(c, 0)) for c in classes},
        "api_errors": {str(k): int(v) for k, v in errors.value_counts().items()},
        "video_outcomes": api_outcomes(frames, found),
    }
    points = [p["category"] for ps in table["points"] for p in ps]
    if points:
        record["points"] = {c: points.count(c) for c in classes}
    return FRAME.table(table, *DETECT_FIELDS), record
