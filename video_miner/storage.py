"""The workflow's own files on object storage (Snakemake's storage plugins).

With ``--default-storage-provider``, Snakemake stages each job's inputs and outputs
under a local folder (``.snakemake/storage/<provider>/<bucket>/<prefix>/``) and a job
sees those staged paths. Tables record paths of the workflow's files (a frame's image, a
downloaded video) as the workflow names them (``results/...``), so a run on object
storage writes the same tables as a local run; a job maps them back to where its inputs
were staged. The Snakefile sets :data:`ROOT_ENV` (empty for a local run) and jobs
inherit it, also where a cloud executor re-reads the Snakefile for each job.
"""

from __future__ import annotations

import os

ROOT_ENV = "VIDEO_MINER_STORAGE_ROOT"
# The folders whose files are the workflow's own (and so staged on object storage);
# anything else (a user's local video read in place, a URL) is left as it is.
WORKFLOW_FOLDERS = ("results/", "logs/")
# Table columns that hold paths of workflow files.
PATH_COLUMNS = ("path", "file")


def staging_root() -> str:
    """Where this run's remote files are staged ('' when the run is local)."""
    root = os.environ.get(ROOT_ENV, "")
    return root.rstrip("/") + "/" if root else ""


def logical(path: str) -> str:
    """A staged path as the workflow names it (``results/...``); any other path unchanged."""
    root = staging_root()
    if root and isinstance(path, str) and path.startswith(root):
        return path[len(root):]
    return path


def staged(path: str) -> str:
    """Where a workflow file named in a table lies in this job (its staged copy on object
    storage); any other path (a local video read in place, empty, a URL) unchanged."""
    root = staging_root()
    if root and isinstance(path, str) and path.startswith(WORKFLOW_FOLDERS):
        return root + path
    return path


def root_for(local_path_of_probe: str, probe: str) -> str:
    """The staging root from the local path Snakemake's default storage provider gives the
    workflow file ``probe``."""
    local = str(local_path_of_probe)
    if not local.endswith(probe):
        raise ValueError(f"cannot tell the staging folder from {local!r}")
    return local[: -len(probe)]
