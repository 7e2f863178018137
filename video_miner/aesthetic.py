"""The LAION aesthetic predictor: CLIP image embeddings (transformers' ``CLIPModel``
through the shared loader), L2-normalised, into the improved-aesthetic-predictor's MLP
head; one score per frame, about 1 to 10. No package ships its weights and no model
hub hosts them with the CLIP model: ``aesthetic.head`` points at the published
``sac+logos+ava1-l14-linearMSE.pth`` (tests and the demo use a tiny random CLIP and
head built locally, loaded by the same code)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from video_miner.devices import Registry

AESTHETIC_BACKENDS = Registry("aesthetic backend")
HEAD_FILES = ("aesthetic_head.safetensors", "aesthetic_head.pth")


def aesthetic_head(in_dim: int = 768):
    """The LAION improved-aesthetic-predictor's MLP (its ``MLP`` class, layer for layer:
    in_dim -> 1024 -> 128 -> 64 -> 16 -> 1, dropout between the first four, no
    activations), so its published state dict (``layers.0.weight``, ...) loads as is."""
    import torch

    class AestheticHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(in_dim, 1024), torch.nn.Dropout(0.2),
                torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
                torch.nn.Linear(128, 64), torch.nn.Dropout(0.1),
                torch.nn.Linear(64, 16),
                torch.nn.Linear(16, 1),
            )

        def forward(self, embeddings):
            return self.layers(embeddings)

    return AestheticHead()


def head_path(model: str, head: str | None) -> Path | None:
    """The head's weights: ``head`` when given, else the first of ``HEAD_FILES`` in the
    model folder (None for a hub model without ``head``)."""
    if head:
        return Path(head)
    folder = Path(model)
    if folder.is_dir():
        for name in HEAD_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def load_head(path: str | os.PathLike, in_dim: int | None = None):
    """The head from a ``.pth`` (as LAION publishes it: a state dict, read with
    ``weights_only``) or ``.safetensors`` file, in eval mode (dropout off)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    state = {k if k.startswith("layers.") else f"layers.{k}": v for k, v in state.items()}
    found = state["layers.0.weight"].shape[1]
    if in_dim is not None and found != in_dim:
        raise ValueError(f"the aesthetic head {path} takes {found}-dim embeddings, the CLIP model gives {in_dim}")
    head = aesthetic_head(found)
    head.load_state_dict(state)
    return head.eval()


@AESTHETIC_BACKENDS.register("laion")
class LaionAesthetic:
    """CLIP image embeddings (transformers' ``CLIPModel`` through the shared loader),
    L2-normalised, into the LAION head: one score per frame, about 1 to 10. Real use:
    ``openai/clip-vit-large-patch14`` with ``sac+logos+ava1-l14-linearMSE.pth``."""

    def __init__(self, model: str, head: str | None, settings):
        self.model_id, self.head_file, self.settings = model, head, settings
        self.loaded = self.head = None

    def setup(self) -> "LaionAesthetic":
        if self.loaded is None:
            from video_miner.models import load_hf_model

            path = head_path(self.model_id, self.head_file)
            if path is None:
                raise ValueError(f"no aesthetic head for {self.model_id}: set aesthetic.head to the LAION head's "
                                 f"weights, or put {HEAD_FILES[0]} in the model folder")
            self.loaded = load_hf_model(self.model_id, self.settings, "CLIPModel", "AutoImageProcessor",
                                        role="aesthetic model")
            self.head = load_head(path, self.loaded.model.config.projection_dim).to(self.loaded.device)
        return self

    def embed(self, images: Sequence[np.ndarray]):
        """L2-normalised image embeddings (float32) of RGB frames."""
        import torch

        from video_miner.models import _normalise, _pooled, to_device

        inputs = self.loaded.processor(images=[np.asarray(i) for i in images], return_tensors="pt")
        with torch.inference_mode():
            features = self.loaded.model.get_image_features(**to_device(inputs, self.loaded.device, self.loaded.dtype))
            return _normalise(_pooled(features).float())

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        scores = []
        for first in range(0, len(images), self.settings.batch_size):
            embeddings = self.embed(images[first : first + self.settings.batch_size])
            with torch.inference_mode():
                scores.append(self.head(embeddings).squeeze(-1).float().cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def make_aesthetic(section: dict, models: dict):
    from video_miner.models import ModelSettings

    return AESTHETIC_BACKENDS.create(section["backend"], model=section["model"], head=section["head"],
                                     settings=ModelSettings.from_config(models))


def reduce_scores(values: Sequence[float], how: str) -> float:
    """A clip's aesthetic score from its frames': ``min`` (cosmos-curate's choice: one
    bad frame spoils the clip) or ``mean``."""
    if len(values) == 0:
        return float("nan")
    return float(np.min(values) if how == "min" else np.mean(values))
