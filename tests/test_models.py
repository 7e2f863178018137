"""The model layer with tiny random-weight checkpoints of the real architectures."""

import numpy as np
import pytest
from PIL import Image

from video_miner.defaults import section_defaults
from video_miner.models import (LOAD_COUNTS, HFImageEmbedder, ModelSettings, PHashEmbedder, Registry, SiglipScorer,
                                claim_gpu, is_local_model, job_gpus, load_hf_model, make_embedder, resolve_device,
                                resolve_dtype, to_device)
from video_miner.synth import photo

CPU = ModelSettings(device="cpu", batch_size=3, num_workers=2)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "astronaut"):
        path = root / f"{len(paths)}_{name}.jpg"
        Image.fromarray(photo(name)).save(path, quality=90)
        paths.append(str(path))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return paths, str(root / "broken.jpg")


@pytest.mark.parametrize("name", ["siglip2", "siglip"])
def test_scorer_gives_one_sigmoid_score_per_prompt(tiny_models, images, name):
    paths, _ = images
    prompts = ["a photo of a cat", "a photo of a face", "a photo of a rocket"]
    scorer = SiglipScorer(str(tiny_models[name]), CPU, prompts)
    scores = scorer.process(paths)
    assert scores.shape == (5, 3) and scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    np.testing.assert_allclose(scores[0], scores[4], atol=1e-5)  # same image, same scores
    assert not np.allclose(scores[0], scores[1])


@pytest.mark.parametrize("name", ["siglip", "siglip2"])
def test_scorer_matches_the_models_own_forward(tiny_models, tmp_path, name):
    """Our batched, prefetched path equals transformers' own logits for the pair."""
    import torch
    from transformers import AutoModel, AutoProcessor

    paths = []
    for picture in ("chelsea", "rocket"):  # PNG: the same pixels on both paths (no JPEG draft decoding)
        paths.append(str(tmp_path / f"{picture}.png"))
        Image.fromarray(photo(picture)).save(paths[-1])
    prompts = ["a photo of a cat", "a photo of a dog"]
    ours = SiglipScorer(str(tiny_models[name]), CPU, prompts).process(paths)
    model = AutoModel.from_pretrained(tiny_models[name]).eval()
    processor = AutoProcessor.from_pretrained(tiny_models[name])
    # Siglip2Processor's class defaults would override the checkpoint's patch settings.
    patches = {"patch_size": 8, "max_num_patches": 64} if name == "siglip2" else {}
    inputs = processor(text=prompts, images=[Image.open(p).convert("RGB") for p in paths],
                       padding="max_length", max_length=16, return_tensors="pt", **patches)
    if name == "siglip":
        inputs.pop("attention_mask", None)  # SigLIP (v1) is trained and used without one
    with torch.no_grad():
        reference = torch.sigmoid(model(**inputs).logits_per_image).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_siglip2_preprocessing_uses_the_checkpoints_patch_settings(tiny_models, images):
    scorer = SiglipScorer(str(tiny_models["siglip2"]), CPU, ["a photo of a cat"])
    inputs, valid = scorer._preprocess(images[0][:2])
    assert inputs["pixel_values"].shape[1] == 64  # max_num_patches of the checkpoint, not the class default
    assert valid.all()


@pytest.mark.parametrize("name,dim", [("dinov2", 32), ("siglip2", 32), ("siglip", 32)])
def test_embedders_give_unit_vectors(tiny_models, images, name, dim):
    paths, _ = images
    embeddings = HFImageEmbedder(str(tiny_models[name]), CPU).process(paths)
    assert embeddings.shape == (5, dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embeddings[0] @ embeddings[4] > 0.999 > embeddings[0] @ embeddings[1]


def test_unreadable_images_give_nan_rows_not_a_crash(tiny_models, images):
    paths, broken = images
    embeddings = HFImageEmbedder(str(tiny_models["dinov2"]), CPU).process([paths[0], broken, paths[1]])
    assert np.isnan(embeddings[1]).all() and not np.isnan(embeddings[[0, 2]]).any()
    hashes = PHashEmbedder(CPU).process([broken, paths[0]])
    assert np.isnan(hashes[0]).all() and not np.isnan(hashes[1]).any()


def test_each_construction_loads_the_checkpoint_once(tiny_models, images):
    key = str(tiny_models["dinov2"])
    before = LOAD_COUNTS[key]
    embedder = HFImageEmbedder(key, CPU)
    for _ in range(3):
        embedder.process(images[0][:2])
    assert LOAD_COUNTS[key] == before + 1


def test_the_shared_loader_counts_one_load_and_gives_an_eval_model_on_the_device(tiny_models, caplog):
    import logging

    import torch

    key = str(tiny_models["dinov2"])
    before = LOAD_COUNTS[key]
    with caplog.at_level(logging.INFO, logger="video_miner.models"):
        loaded = load_hf_model(key, CPU)
    assert LOAD_COUNTS[key] == before + 1
    assert f"loading model {key} on cpu as float32" in caplog.text
    assert loaded.model_id == key and loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert not loaded.model.training and next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.processor is not None
    assert load_hf_model(key, CPU, processor_class=None).processor is None


def test_inputs_move_to_the_device_with_floats_in_the_model_dtype():
    import torch

    moved = to_device({"pixel_values": torch.ones(2), "input_ids": torch.ones(2, dtype=torch.long), "sizes": [(4, 4)]},
                      torch.device("cpu"), torch.bfloat16)
    assert moved["pixel_values"].dtype == torch.bfloat16 and moved["input_ids"].dtype == torch.long
    assert moved["sizes"] == [(4, 4)]  # not a tensor: passed through


def test_a_registered_class_is_creatable_and_unknown_names_list_the_known_ones():
    registry = Registry("widget")

    @registry.register("round")
    class Round:
        def __init__(self, size):
            self.size = size

    assert registry.names() == ("round",) and registry.create("round", 3).size == 3
    with pytest.raises(ValueError, match="unknown widget 'square'; known: round"):
        registry.create("square", 3)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("round")(Round)


def test_make_embedder_creates_the_configured_dedup_backend(tiny_models):
    assert isinstance(make_embedder("phash", "facebook/dinov2-base", CPU), PHashEmbedder)  # no model is loaded
    assert isinstance(make_embedder("model", str(tiny_models["dinov2"]), CPU), HFImageEmbedder)
    with pytest.raises(ValueError, match="known: model, phash"):
        make_embedder("clip", "facebook/dinov2-base", CPU)


def test_settings_defaults_are_the_schema_defaults():
    from video_miner.dedup import SearchSettings
    from video_miner.detection import DetectionSettings

    models = section_defaults("models")
    assert {key: getattr(ModelSettings(), key) for key in models} == models
    detection = section_defaults("detection")
    keys = ("backend", "model", "threshold", "text_threshold", "nms_iou", "max_per_image", "max_new_tokens", "opencv")
    assert {key: getattr(DetectionSettings(), key) for key in keys} == {key: detection[key] for key in keys}
    dedup = section_defaults("dedup")
    search = SearchSettings()
    assert (search.exact_max, search.nlist, search.nprobe) == (dedup["exact_search_max"], dedup["ivf_nlist"],
                                                               dedup["ivf_nprobe"])


def test_phash_is_a_hamming_distance_in_inner_product_form(images):
    paths, _ = images
    hashes = PHashEmbedder(CPU).process(paths)
    assert hashes.shape == (5, 64) and set(np.unique(hashes)) == {-0.125, 0.125}
    hamming = (np.sign(hashes[0]) != np.sign(hashes[1])).sum()
    assert hashes[0] @ hashes[1] == pytest.approx(1 - 2 * hamming / 64)
    assert hashes[0] @ hashes[4] == pytest.approx(1.0)
    # A re-encoded copy stays close; another photo is far.
    recompressed = Image.open(paths[0])
    recompressed.save(paths[0] + ".q30.jpg", quality=30)
    again = PHashEmbedder(CPU).process([paths[0] + ".q30.jpg"])[0]
    assert (np.sign(again) != np.sign(hashes[0])).sum() <= 4 < hamming


def test_device_and_dtype_resolution():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda:1")


def test_gpu_resource_follows_the_device(monkeypatch):
    assert job_gpus("cpu") == 0 and job_gpus("cuda:0") == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert job_gpus("auto") == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert job_gpus("auto") == 0


def test_remote_code_is_off_unless_enabled(tiny_models):
    assert ModelSettings().trust_remote_code is False
    assert HFImageEmbedder(str(tiny_models["dinov2"]), CPU).settings.trust_remote_code is False


def test_local_paths_and_hub_ids_are_told_apart(tmp_path):
    assert not is_local_model("facebook/dinov2-base")
    assert is_local_model("resources/models/dinov2") and is_local_model("./model") and is_local_model("/abs/model")


def test_concurrent_jobs_claim_different_gpus(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from video_miner.models import claim_gpu;"
         f"print(claim_gpu(2, Path({str(tmp_path)!r})), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(2, tmp_path, timeout_s=5) == 1  # device 0 is taken
        with pytest.raises(TimeoutError, match="all 2 GPUs are held"):
            claim_gpu(2, tmp_path, timeout_s=1)
    finally:
        holder.kill()
        holder.wait()
    assert claim_gpu(3, tmp_path, timeout_s=5) == 0  # released when the holder died (even by SIGKILL)


def test_gpu_locks_are_named_by_physical_device(tmp_path, monkeypatch):
    # Two SLURM jobs on one node each see their own GPU as index 0: no conflict.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpu(1, tmp_path, timeout_s=1) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert claim_gpu(1, tmp_path, timeout_s=1) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
    with pytest.raises(TimeoutError):
        claim_gpu(1, tmp_path, timeout_s=0)  # device 5 is held by this process already


def test_progress_logs_rate_and_remaining_at_most_every_interval(caplog):
    import logging

    from video_miner.logs import Progress

    clock = iter([10.0, 32.0, 40.0, 72.0])
    progress = Progress("frames", 100, every_s=30)
    progress._clock = lambda: next(clock)
    progress.started = progress.last = 0.0
    with caplog.at_level(logging.INFO, logger="video_miner.progress"):
        for _ in range(4):
            progress.update(20)
    assert [r.getMessage() for r in caplog.records] == ["frames: 40/100 (1.2/s, about 48 s left)",
                                                        "frames: 80/100 (1.1/s, about 18 s left)"]
