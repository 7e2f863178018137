"""Model wrappers behind one small interface: ``process(paths) -> np.ndarray``.

Each wrapper loads its checkpoint once (Hugging Face id or local folder, through
``from_pretrained``), runs batched inference under ``torch.inference_mode()`` on the
configured device and dtype, and decodes and preprocesses images on worker threads so
the accelerator is not kept waiting on JPEG decoding. Every Hugging Face stage loads
through ``load_hf_model``; a new backend is one class registered in a ``Registry``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from video_miner.defaults import section_defaults
from video_miner.framestore import open_image
from video_miner.ids import is_local_model  # noqa: F401 - here for the model stages
from video_miner.logs import Progress

log = logging.getLogger(__name__)

# How often each checkpoint was loaded in this process: a shard job loads each once.
LOAD_COUNTS: Counter = Counter()


_MODEL_DEFAULTS = section_defaults("models")


@dataclass(frozen=True)
class ModelSettings:
    device: str = _MODEL_DEFAULTS["device"]  # auto | cpu | cuda | cuda:N
    dtype: str = _MODEL_DEFAULTS["dtype"]  # auto (bf16/fp16 on GPU, fp32 on CPU) | float32 | float16 | bfloat16
    batch_size: int = _MODEL_DEFAULTS["batch_size"]
    num_workers: int = 2  # the job's threads: image decoding runs ahead of the model
    trust_remote_code: bool = _MODEL_DEFAULTS["trust_remote_code"]

    @classmethod
    def from_config(cls, section: dict) -> "ModelSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


# Devices and the backend registry live in video_miner.devices (no transformers there),
# re-exported here for the model stages.
from video_miner.devices import GPU_LOCK_DIR, Registry, claim_gpu, resolve_device, resolve_dtype  # noqa: E402,F401


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    model: Any
    processor: Any  # None when no processor class was asked for
    device: Any  # torch.device
    dtype: Any  # torch.dtype


def load_hf_model(model_id: str, settings: ModelSettings, auto_class: str = "AutoModel",
                  processor_class: str | None = "AutoImageProcessor", role: str = "model") -> LoadedModel:
    """The one loader of every transformers stage: a checkpoint (hub id or folder) in eval
    mode on the configured device and dtype, with its processor. ``role`` is the word in
    the log line ("loading detector ...")."""
    import transformers

    from video_miner.hub import ensure_available

    # Offline and not cached: one line naming the model and fetch-models, before any load.
    ensure_available(model_id)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    log.info("loading %s %s on %s as %s", role, model_id, device, str(dtype).removeprefix("torch."))
    LOAD_COUNTS[model_id] += 1
    remote = settings.trust_remote_code
    model = getattr(transformers, auto_class).from_pretrained(model_id, dtype=dtype, trust_remote_code=remote)
    processor = (getattr(transformers, processor_class).from_pretrained(model_id, trust_remote_code=remote)
                 if processor_class else None)
    return LoadedModel(model_id, model.to(device).eval(), processor, device, dtype)


def to_device(inputs, device, dtype) -> dict:
    """Model inputs (a dict or BatchFeature) on ``device``, floating tensors cast to ``dtype``;
    values that are not tensors pass through."""
    moved = {}
    for key, value in dict(inputs).items():
        if hasattr(value, "to"):
            value = value.to(device, non_blocking=True)  # overlaps the copy of pinned inputs
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


def load_image(path: str, min_side: int | None = None) -> Image.Image | None:
    """An RGB image, or None when unreadable. Large JPEGs are decoded at reduced scale
    (``draft``) when the model needs far fewer pixels."""
    try:
        with open_image(path) as image:
            if min_side and image.format == "JPEG":
                image.draft("RGB", (2 * min_side, 2 * min_side))
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        log.warning("cannot read image %s: %s", path, exc)
        return None


def prefetch(fn: Callable, items: Iterable, workers: int, depth: int) -> Iterator:
    """``fn`` over ``items`` on a thread pool, results in order, at most ``depth`` ahead."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _batches(seq: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _pooled(output):
    """Image/text feature calls return a tensor or, in newer transformers, an output object."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


class FrameModel:
    """The interface: ``process(paths)`` gives one row per image (NaN where unreadable)."""

    dim: int

    def process(self, paths: Sequence[str]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class HFFrameModel(FrameModel):
    """Shared loading, batching and prefetching for transformers checkpoints."""

    auto_class = "AutoModel"

    def __init__(self, model_id: str, settings: ModelSettings):
        import torch

        loaded = load_hf_model(model_id, settings, self.auto_class, "AutoImageProcessor")
        self.settings = settings
        self.model, self.image_processor = loaded.model, loaded.processor
        self.device, self.dtype = loaded.device, loaded.dtype
        self.model_id = model_id
        self._torch = torch

    def _input_side(self) -> int | None:
        size = getattr(self.image_processor, "size", None) or {}
        return max((v for v in dict(size).values() if isinstance(v, int)), default=None)

    def _preprocess(self, paths: Sequence[str]):
        """Runs on worker threads: decode, resize/normalise, pin for a fast copy."""
        images = [load_image(p, self._input_side()) for p in paths]
        valid = np.array([im is not None for im in images])
        images = [im if im is not None else Image.new("RGB", (32, 32)) for im in images]
        inputs = dict(self.image_processor(images=images, return_tensors="pt"))
        if self.device.type == "cuda":
            inputs = {k: v.pin_memory() for k, v in inputs.items()}
        return inputs, valid

    def _forward(self, inputs: dict):  # pragma: no cover - per backend
        raise NotImplementedError

    def process(self, paths: Sequence[str]) -> np.ndarray:
        rows = []
        batches = _batches(list(paths), self.settings.batch_size)
        progress = Progress("frames", len(paths))
        with self._torch.inference_mode():
            # A batch per worker in flight: with fewer, workers sit idle and a GPU waits
            # on preprocessing (measured on an H100: depth 2 kept 3 of 8 workers busy).
            depth = max(2, self.settings.num_workers)
            for inputs, valid in prefetch(self._preprocess, batches, self.settings.num_workers, depth=depth):
                out = self._forward(to_device(inputs, self.device, self.dtype)).float().cpu().numpy()
                out[~valid] = np.nan
                rows.append(out)
                progress.update(len(out))
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)


def _normalise(features):
    return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class SiglipScorer(HFFrameModel):
    """SigLIP / SigLIP2 image-text scores: sigmoid(scale * cos + bias) per (image, prompt).
    Prompt features are computed once, when the scorer is made."""

    def __init__(self, model_id: str, settings: ModelSettings, prompts: Sequence[str]):
        super().__init__(model_id, settings)
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(model_id, trust_remote_code=settings.trust_remote_code)
        # SigLIP models are trained on prompts padded to their full text length.
        max_length = self.model.config.text_config.max_position_embeddings
        text = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True,
                         return_tensors="pt")
        text = {k: v.to(self.device) for k, v in text.items() if k in ("input_ids", "attention_mask")}
        if self.model.config.model_type == "siglip":  # v1 was trained without a text attention mask
            text.pop("attention_mask", None)
        with self._torch.inference_mode():
            self.text_features = _normalise(_pooled(self.model.get_text_features(**text)).float())
        self.scale = self.model.logit_scale.float().exp()
        self.bias = self.model.logit_bias.float()
        self.dim = len(prompts)

    def _forward(self, inputs):
        image = _normalise(_pooled(self.model.get_image_features(**inputs)).float())
        return self._torch.sigmoid(image @ self.text_features.T * self.scale + self.bias)

    def score_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Scores of images already in memory (crops), ``(images, prompts)``, in batches."""
        rows = []
        with self._torch.inference_mode():
            for batch in _batches(list(images), self.settings.batch_size):
                inputs = dict(self.image_processor(images=list(batch), return_tensors="pt"))
                rows.append(self._forward(to_device(inputs, self.device, self.dtype)).float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)


# Created as ``cls(model_id=..., settings=...)`` by make_embedder.
EMBEDDERS = Registry("dedup backend")


@EMBEDDERS.register("model")
class HFImageEmbedder(HFFrameModel):
    """L2-normalised image embeddings: DINOv2/DINOv3 (pooled CLS token) or the image tower
    of a SigLIP/SigLIP2 checkpoint."""

    def __init__(self, model_id: str, settings: ModelSettings):
        super().__init__(model_id, settings)
        config = self.model.config
        self._contrastive = hasattr(self.model, "get_image_features")
        self.dim = (config.text_config.projection_size if self._contrastive and hasattr(config.text_config, "projection_size")
                    else getattr(config, "vision_config", config).hidden_size)

    def _forward(self, inputs):
        if self._contrastive:
            return _normalise(_pooled(self.model.get_image_features(**inputs)).float())
        return _normalise(self.model(**inputs).pooler_output.float())


@EMBEDDERS.register("phash")
class PHashEmbedder(FrameModel):
    """Perceptual hash (DCT of a 32x32 grey image, 8x8 low frequencies against their
    median) as a model-free CPU backend. Bits become +-1/8 vectors, so the inner product
    is 1 - 2 * hamming / 64 and the same FAISS search serves every backend."""

    dim = 64

    def __init__(self, settings: ModelSettings, model_id: str | None = None):  # model-free: the id is unused
        self.settings = settings
        n = 32
        k = np.arange(n)
        self._dct = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))  # DCT-II basis

    def hash_bits(self, image: Image.Image) -> np.ndarray:
        grey = np.asarray(image.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
        low = (self._dct @ grey @ self._dct.T)[:8, :8].ravel()
        return low > np.median(low)

    def _one(self, path: str) -> np.ndarray:
        image = load_image(path, 64)
        if image is None:
            return np.full(self.dim, np.nan, np.float32)
        return np.where(self.hash_bits(image), 1.0, -1.0).astype(np.float32) / 8.0

    def process(self, paths: Sequence[str]) -> np.ndarray:
        progress = Progress("frames", len(paths))
        rows = []
        for row in prefetch(self._one, paths, self.settings.num_workers, depth=4 * self.settings.num_workers):
            rows.append(row)
            progress.update()
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


def model_key(model_id: str | None, settings: ModelSettings) -> dict:
    """What a model's outputs depend on, to key cached results: the checkpoint (for a
    folder, each file's size and time, so a checkpoint rebuilt in place counts as new),
    and the device and dtype it runs with."""
    checkpoint: object = model_id
    if model_id and is_local_model(model_id) and os.path.isdir(model_id):
        root = Path(model_id)
        checkpoint = sorted((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                            for p in root.rglob("*") if p.is_file())
    return {"checkpoint": checkpoint, "device": settings.device, "dtype": settings.dtype}


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use, without importing torch (used while Snakemake
    parses the workflow)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def job_gpus(device: str) -> int:
    """The ``gpu`` resource a model job requests: 0 on CPU, so CPU-only runs (and
    ``--resources gpu=0``) schedule it."""
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    return 1 if visible_gpus() else 0


def make_embedder(backend: str, model_id: str, settings: ModelSettings) -> FrameModel:
    return EMBEDDERS.create(backend, model_id=model_id, settings=settings)
