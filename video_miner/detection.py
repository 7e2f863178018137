"""Open-set object detection behind one interface: ``detect(paths) -> boxes per image``.

Every backend returns, per image, an ``(n, 6)`` float32 array of ``x0, y0, x1, y1,
score, class_index`` in pixels of the original frame (``None`` for an unreadable image);
thresholding, clipping, per-class NMS and the per-image cap are shared. Backends:
Grounding DINO, OWLv2 / OWL-ViT (transformers zero-shot detection), Florence-2 (native
transformers class, phrase grounding) and OpenCV Haar cascades (weights ship with
``opencv-python-headless<5``: offline and CPU-only). A new backend is one class.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from video_miner.logs import Progress
from video_miner.models import LOAD_COUNTS, ModelSettings, _batches, load_image, prefetch, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

BACKENDS = ("grounding_dino", "owlv2", "florence2", "opencv")
DEFAULT_MODELS = {
    "grounding_dino": "IDEA-Research/grounding-dino-base",
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "florence2": "florence-community/Florence-2-base",
    "opencv": None,
}
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
    backend: str = "grounding_dino"
    model: str | None = None
    classes: tuple[str, ...] = ()
    threshold: float = 0.3
    text_threshold: float = 0.25
    nms_iou: float = 0.5
    max_per_image: int = 100
    max_new_tokens: int = 256  # Florence-2 generation length
    opencv: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict) -> "DetectionSettings":
        values = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        values["classes"] = tuple(section.get("classes", ()))
        values["model"] = section.get("model") or DEFAULT_MODELS[section.get("backend", "grounding_dino")]
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


class Detector:
    """The interface: ``detect(paths)`` gives one ``(n, 6)`` array per image, or None
    where the image cannot be read. Backends implement ``_predict(images)``."""

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
        for images in prefetch(self._load, batches, self.model_settings.num_workers, depth=2):
            readable = [im for im in images if im is not None]
            raw = iter(self._predict(readable) if readable else [])
            for image in images:
                results.append(None if image is None else finalize(next(raw), image.width, image.height, self.settings))
            progress.update(len(images))
        return results


class HFDetector(Detector):
    """Loading and device handling shared by the transformers backends."""

    auto_class = "AutoModelForZeroShotObjectDetection"

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        super().__init__(settings, model_settings)
        import torch
        import transformers

        self.device = resolve_device(model_settings.device)
        self.dtype = resolve_dtype(model_settings.dtype, self.device)
        log.info("loading detector %s on %s as %s", settings.model, self.device, str(self.dtype).removeprefix("torch."))
        LOAD_COUNTS[settings.model] += 1
        remote = model_settings.trust_remote_code
        self.model = getattr(transformers, self.auto_class).from_pretrained(
            settings.model, dtype=self.dtype, trust_remote_code=remote).to(self.device).eval()
        self.processor = transformers.AutoProcessor.from_pretrained(settings.model, trust_remote_code=remote)
        self._torch = torch

    def _to_device(self, inputs) -> dict:
        moved = {}
        for key, value in dict(inputs).items():
            if hasattr(value, "to"):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        return moved


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


class GroundingDinoDetector(HFDetector):
    """Grounding DINO: the classes form one prompt ("cat . dog ."). As in the reference
    implementation a box is kept when its best token probability reaches ``threshold``
    (the box threshold); its class is the phrase with the highest token probability,
    which must reach ``text_threshold``."""

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


class OwlDetector(HFDetector):
    """OWLv2 and OWL-ViT: one query per class; the processor's post-processing undoes
    OWLv2's square padding."""

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


class Florence2Detector(HFDetector):
    """Florence-2 phrase grounding over the classes ("cat. dog."). It generates boxes
    without confidences: each gets score 1.0, so ``threshold`` does not filter them."""

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


class OpenCVHaarDetector(Detector):
    """Haar cascades (Viola-Jones), one per class. A box's score grows with the number n
    of raw windows that agree on it: n / (n + 10), so 0.5 at ten windows. Clear faces get
    dozens; the cascades' typical false positives only a few, which the default
    threshold (0.3, about 4 windows) drops."""

    def __init__(self, settings: DetectionSettings, model_settings: ModelSettings):
        super().__init__(settings, model_settings)
        options = {"scale_factor": 1.05, "min_neighbors": 3, "min_size": 0.08, "cascades": {}, **settings.opencv}
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


DETECTORS = {
    "grounding_dino": GroundingDinoDetector,
    "owlv2": OwlDetector,
    "florence2": Florence2Detector,
    "opencv": OpenCVHaarDetector,
}


def make_detector(settings: DetectionSettings, model_settings: ModelSettings) -> Detector:
    return DETECTORS[settings.backend](settings, model_settings)


# --- per-shard detection table -------------------------------------------------------

DETECTION_SCHEMA = pa.schema([
    pa.field("frame_id", pa.string(), nullable=False),
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("readable", pa.bool_(), nullable=False),
    pa.field("category", pa.list_(pa.string()), nullable=False),
    pa.field("score", pa.list_(pa.float32()), nullable=False),
    pa.field("bbox", pa.list_(pa.list_(pa.float32(), 4)), nullable=False),  # x, y, w, h in pixels
])


def image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return None


def detections_table(frames: pd.DataFrame, found: list[np.ndarray | None], classes: Sequence[str]) -> pa.Table:
    """One row per frame with its boxes (xywh) as list columns."""
    sizes = [image_size(p) if dets is not None else None for p, dets in zip(frames["path"], found)]
    empty = np.zeros((0, 6), np.float32)
    boxes = [empty if d is None else d for d in found]
    return pa.table({
        "frame_id": frames["frame_id"].tolist(),
        "video_id": frames["video_id"].tolist(),
        "frame_index": frames["frame_index"].astype("int64").tolist(),
        "timestamp_s": frames["timestamp_s"].astype("float64").tolist(),
        "path": frames["path"].tolist(),
        "width": [s[0] if s else None for s in sizes],
        "height": [s[1] if s else None for s in sizes],
        "readable": [d is not None for d in found],
        "category": [[classes[int(c)] for c in b[:, 5]] for b in boxes],
        "score": [b[:, 4].tolist() for b in boxes],
        "bbox": [np.column_stack([b[:, :2], b[:, 2:4] - b[:, :2]]).round(2).tolist() for b in boxes],
    }, schema=DETECTION_SCHEMA)


def detect_frames(frames: pd.DataFrame, detector_factory, classes: Sequence[str]) -> tuple[pa.Table, dict]:
    """Detect on every frame; the detector (model) is made once, and only if there are
    frames."""
    found = detector_factory().detect(frames["path"].tolist()) if len(frames) else []
    table = detections_table(frames, found, classes)
    counts = pd.Series([c for cats in table["category"].to_pylist() for c in cats], dtype="string").value_counts()
    record = {
        "frames": len(frames),
        "unreadable": int(sum(d is None for d in found)),
        "frames_with_detections": int(sum(d is not None and len(d) > 0 for d in found)),
        "detections": {c: int(counts.get(c, 0)) for c in classes},
    }
    return table, record
