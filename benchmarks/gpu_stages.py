"""Model stages on a GPU: frames/s of the filter (SigLIP2 so400m-size), embed (DINOv2
base-size) and detect (Grounding DINO tiny-size) wrappers, from JPEG files on disk, against
a bare forward pass of the same model on synthetic tensors already on the device
(the ceiling: no decoding, no preprocessing, no copies). Random weights at real
architecture sizes: throughput does not depend on the weights.

Usage: python benchmarks/gpu_stages.py [--frames 512] [--batch-size 32] [--device cuda] [--small]
  --small uses tiny architectures (to check the script on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image


def frames(root: Path, count: int) -> list[str]:
    """``count`` 1280x720 JPEG frames cut from scikit-image photos."""
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    paths = []
    for i in range(count):
        image = Image.fromarray(photos[i % len(photos)]).resize((1280, 720), Image.BILINEAR)
        path = root / f"{i:06d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def build_models(root: Path, small: bool) -> dict[str, Path]:
    """Checkpoints with the tiny builders' tokenizers/processors and, unless ``small``,
    real-size architectures."""
    import torch
    from transformers import (AutoProcessor, Dinov2Config, Dinov2Model, GroundingDinoConfig,
                              GroundingDinoForObjectDetection, Siglip2Config, Siglip2ImageProcessor, Siglip2Model)

    from video_miner.tiny_models import BUILDERS

    paths = {name: BUILDERS[name](root / name) for name in ("siglip2", "dinov2", "grounding_dino")}
    if small:
        return paths
    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(paths["siglip2"])
    processor.image_processor = Siglip2ImageProcessor(patch_size=16, max_num_patches=256)
    vocab = len(processor.tokenizer)
    so400m = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16)
    siglip2 = Siglip2Model(Siglip2Config(
        text_config={**so400m, "vocab_size": vocab, "max_position_embeddings": 64, "projection_size": 1152},
        vision_config={**so400m, "patch_size": 16, "num_patches": 256}))
    siglip2.save_pretrained(root / "siglip2_real")
    processor.save_pretrained(root / "siglip2_real")
    paths["siglip2"] = root / "siglip2_real"
    dinov2 = Dinov2Model(Dinov2Config())  # the defaults are ViT-B/14, as facebook/dinov2-base
    dinov2.save_pretrained(root / "dinov2_real")
    from transformers import BitImageProcessor

    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(root / "dinov2_real")
    paths["dinov2"] = root / "dinov2_real"
    gd_processor = AutoProcessor.from_pretrained(paths["grounding_dino"])
    gd_processor.image_processor.size = {"shortest_edge": 800, "longest_edge": 1333}
    config = GroundingDinoConfig()  # Swin-T + BERT-base text encoder: grounding-dino-tiny's shape
    config.text_config.vocab_size = len(gd_processor.tokenizer)
    GroundingDinoForObjectDetection(config).save_pretrained(root / "gdino_real")
    gd_processor.save_pretrained(root / "gdino_real")
    paths["grounding_dino"] = root / "gdino_real"
    return paths


def timed(fn, frames_count: int) -> float:
    fn()  # warm-up (CUDA kernels, allocator)
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return frames_count / (time.perf_counter() - started)


def forward_fps(forward_batch, frame_count: int, batch_size: int) -> float:
    """Frames/s of the bare model: ``forward_batch`` on one batch already on the device."""
    import torch

    batches = max(1, frame_count // batch_size)

    def loop():
        with torch.inference_mode():
            for _ in range(batches):
                forward_batch()
    return timed(loop, batches * batch_size)


def filter_row(model: Path, paths: list[str], settings) -> dict:
    from video_miner.models import SiglipScorer

    scorer = SiglipScorer(str(model), settings, ["a photo of a cat", "a photo of a face"])
    sample = scorer._preprocess(paths[: settings.batch_size])[0]
    bare = {k: v.to(scorer.device) for k, v in sample.items()}
    bare = {k: v.to(scorer.dtype) if v.is_floating_point() else v for k, v in bare.items()}
    return _row("filter (SigLIP2 so400m-size)", timed(lambda: scorer.process(paths), len(paths)),
                forward_fps(lambda: scorer._forward(bare), len(paths), min(len(paths), settings.batch_size)), scorer.device,
                scorer.dtype)


def embed_row(model: Path, paths: list[str], settings) -> dict:
    from video_miner.models import HFImageEmbedder

    embedder = HFImageEmbedder(str(model), settings)
    sample = embedder._preprocess(paths[: settings.batch_size])[0]
    bare = {k: v.to(embedder.device, embedder.dtype) for k, v in sample.items()}
    return _row("embed (DINOv2 base-size)", timed(lambda: embedder.process(paths), len(paths)),
                forward_fps(lambda: embedder._forward(bare), len(paths), min(len(paths), settings.batch_size)), embedder.device,
                embedder.dtype)


def detect_row(model: Path, paths: list[str], settings) -> dict:
    from video_miner.detection import DetectionSettings, make_detector

    detector = make_detector(DetectionSettings.from_config({
        "backend": "grounding_dino", "model": str(model), "classes": ["cat", "face"]}), settings)
    images = [Image.open(p).convert("RGB") for p in paths[: settings.batch_size]]
    inputs = detector.processor(images=images, text=[detector.prompt] * len(images), return_tensors="pt",
                                padding=True)
    bare = detector._to_device(inputs)
    return _row("detect (Grounding DINO tiny-size)", timed(lambda: detector.detect(paths), len(paths)),
                forward_fps(lambda: detector.model(**bare), len(paths), len(images)), detector.device,
                detector.dtype)


def run(frame_count: int = 512, batch_size: int = 32, device: str = "cuda", small: bool = False) -> list[dict]:
    from video_miner.models import ModelSettings, resolve_device

    # Claim the GPU once: a second claim of "cuda" in the same process waits for this
    # process's own lock (models.claim_gpu), so every model gets the claimed "cuda:N".
    device = str(resolve_device(device))
    settings = ModelSettings(device=device, batch_size=batch_size, num_workers=8)
    # Detection runs a quarter of the frames at a quarter of the batch: its inputs are ~800 px.
    detect_settings = ModelSettings(device=device, batch_size=max(1, batch_size // 4), num_workers=8)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "frames").mkdir()
        paths = frames(root / "frames", frame_count)
        models = build_models(root / "models", small)
        # One stage per function: each model is freed before the next one loads.
        return [filter_row(models["siglip2"], paths, settings),
                embed_row(models["dinov2"], paths, settings),
                detect_row(models["grounding_dino"], paths[: frame_count // 4], detect_settings)]


def _row(stage: str, wrapper_fps: float, bare_fps: float, device, dtype) -> dict:
    ratio = wrapper_fps / bare_fps
    return {"measure": f"{stage}, frames/s", "value": wrapper_fps, "baseline": "bare forward on device tensors",
            "baseline_value": bare_fps, "ratio": ratio, "goal": ">= 0.8x", "met": ratio >= 0.8,
            "detail": f"{device}, {str(dtype).removeprefix('torch.')}, from 1280x720 JPEGs"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    for row in run(args.frames, args.batch_size, args.device, args.small):
        print(row)
