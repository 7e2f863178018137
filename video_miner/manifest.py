"""The manifest shipped with each export: what made it and a sha256 of every file.

``manifest.json`` in an export folder (``results/dataset``, ``results/export/yolo``,
``results/clips``, ``results/export/clips``), or ``<name>.manifest.json`` next to export
files (the COCO files): the run id and the run's configuration (secrets redacted), the
video-miner version and git revision (when it runs from a git checkout), each model the
configuration names with its revision (a hub id: the commit the local hub cache holds; a
local folder: its path and a hash of its files), counts per stage (the run summary's
funnel) and per split, the provenance of each video with items in the export, and each
file's size and sha256. ``video-miner verify-manifest <folder or manifest>`` checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Iterable

from video_miner.fsutil import write_json_atomic

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20
# Model folder files hashed whole up to this size; bigger ones count by name and size
# (weights of many GB would make every export slow).
_HASH_WHOLE = 64 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def software() -> dict:
    """The video-miner version and, from a git checkout, its revision (None elsewhere)."""
    from video_miner import __version__

    root = Path(__file__).resolve().parents[1]
    revision = None
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
        if done.returncode == 0 and done.stdout.strip():
            revision = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git here: the version says enough
        pass
    return {"version": __version__, "git_revision": revision}


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "huggingface")
    return Path(home, "hub")


def folder_hash(folder: str | os.PathLike) -> str:
    """A hash of a model folder's files: names, sizes, and contents up to 64 MiB each."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        if size <= _HASH_WHOLE:
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def model_record(model: str, revision: str = "main") -> dict:
    """A model as the manifest names it: a local folder by path and content hash, a hub
    id by the commit its local cache resolves ``revision`` to (None when not cached)."""
    from video_miner.ids import is_local_model

    if is_local_model(model):
        return {"id": model, "local": True, "sha256": folder_hash(model) if Path(model).is_dir() else None}
    ref = _hub_cache() / f"models--{model.replace('/', '--')}" / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else None
    return {"id": model, "local": False, "revision": commit}


def export_files(root: Path) -> list[Path]:
    """The files of an export folder: not its manifest, and not hidden ones (Snakemake's
    ``.snakemake_timestamp`` in every folder output; uploads skip them too)."""
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST
            and not any(part.startswith(".") for part in p.relative_to(root).parts)]


def manifest_files(root: Path, files: Iterable[Path] | None = None) -> list[dict]:
    """Size and sha256 of ``files`` (default: :func:`export_files` of ``root``)."""
    if files is None:
        files = export_files(root)
    return [{"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(Path(f) for f in files)]


def write_manifest(target: str | os.PathLike, context: dict, splits: dict | None = None,
                   videos: dict | None = None, summary: str | os.PathLike | None = None,
                   files: Iterable[str | os.PathLike] | None = None) -> dict:
    """Write the manifest of an export. ``target``: the export folder (the manifest goes
    inside and lists every file) or the manifest's own path (with ``files``, the export
    files next to it). ``context``: ``run_id``, ``config`` and ``models`` (model ids, see
    :func:`run_context`); ``splits``: items per split; ``videos``: provenance by video id
    of the videos in the export; ``summary``: the run summary, whose funnel gives the
    counts per stage."""
    target = Path(target)
    if files is None:
        root, path, listed = target, target / MANIFEST, None
    else:
        root, path, listed = target.parent, target, [Path(f) for f in files]
    stages = None
    if summary and Path(summary).is_file():
        stages = {row["stage"]: row["count"] for row in json.loads(Path(summary).read_text()).get("funnel", [])}
    manifest = {
        "format": FORMAT,
        "run_id": context["run_id"],
        "software": software(),
        "models": [model_record(m) for m in context.get("models", [])],
        "counts": {"stages": stages, "splits": splits},
        "videos": videos,
        "files": manifest_files(root, listed),
        "config": context["config"],
    }
    write_json_atomic(path, manifest)
    return manifest


def verify_manifest(target: str | os.PathLike) -> list[str]:
    """What does not match a manifest (an empty list when everything does): missing or
    changed files, files a folder's manifest does not list, and a run id that is not the
    hash of the recorded configuration."""
    from video_miner.provenance import run_id

    target = Path(target)
    path = target / MANIFEST if target.is_dir() else target
    if not path.is_file():
        return [f"no manifest at {path}"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{path}: not a video-miner manifest ({exc})"]
    root = path.parent
    problems = []
    for rel, entry in listed.items():
        file = root / rel
        if not file.is_file():
            problems.append(f"missing: {rel}")
        elif file.stat().st_size != entry["size"]:
            problems.append(f"size differs: {rel} ({file.stat().st_size} bytes, manifest {entry['size']})")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"sha256 differs: {rel}")
    if path.name == MANIFEST:  # a folder's manifest lists every file in it
        for file in sorted(export_files(root)):
            if file.relative_to(root).as_posix() not in listed:
                problems.append(f"not in the manifest: {file.relative_to(root).as_posix()}")
    if manifest.get("config") is not None and run_id(manifest["config"]) != manifest.get("run_id"):
        problems.append("run_id is not the hash of the recorded configuration")
    return problems
