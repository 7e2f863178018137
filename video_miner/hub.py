"""Models on compute nodes without internet: fetch them into ``HF_HOME`` where there is
internet (``video-miner fetch-models``, on a login node; the list:
:func:`video_miner.modellist.config_models`), and fail a job whose model is not there
before it loads anything."""

from __future__ import annotations

import os

FETCH_COMMAND = "video-miner fetch-models -c <config>"
_TRUE = ("1", "on", "yes", "true")


class ModelUnavailable(RuntimeError):
    """A hub model that is not in the local cache and cannot be fetched (offline)."""


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cached(model_id: str) -> bool:
    """Whether the local hub cache holds a snapshot of ``model_id`` (no network)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(model_id, local_files_only=True)
        return True
    except Exception:  # not cached (LocalEntryNotFoundError), or an unreadable cache entry
        return False


def missing_message(model_id: str, why: str) -> str:
    return f"model {model_id} is not in the local Hugging Face cache ({why}): run `{FETCH_COMMAND}` on a node with internet"


def ensure_available(model_id: str) -> None:
    """Raise :class:`ModelUnavailable` (one line: the model and the command that fetches
    it) when ``model_id`` is a hub id without a cached snapshot and this node is offline
    or cannot reach the hub. Local folders and cached models pass without a request."""
    from video_miner.ids import is_local_model

    if is_local_model(model_id) or cached(model_id):
        return
    if offline():
        raise ModelUnavailable(missing_message(model_id, "HF_HUB_OFFLINE is set"))
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(model_id, timeout=30)
    except Exception as exc:  # the hub cannot be reached, or does not know the id
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(missing_message(model_id, f"the hub cannot be reached: {reason[:200]}")) from None


def fetch_models(models: list[str], echo=print) -> dict[str, str]:
    """Download each model's snapshot into the hub cache (``HF_HOME``); the folder of each."""
    from huggingface_hub import snapshot_download

    folders = {}
    for model_id in models:
        echo(f"fetching {model_id}")
        folders[model_id] = snapshot_download(model_id)
    return folders
