"""Upload the results to a target URL through fsspec (a local folder, ``s3://``,
``hf://datasets/<repo>``, or any fsspec protocol) and verify every file.

A journal next to the marker lists each file once it is uploaded and verified, so a rerun
after an interruption uploads only what is missing, and a later upload removes the files
it had uploaded that the results no longer hold (a takedown reaches the remote copy). The marker (the rule's output) is
written last, only when every file is verified; it lists each file with size and sha256.
Secrets come from environment variables and are never written to logs or markers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from video_miner.defaults import upload_target_defaults
from video_miner.fsutil import redact, write_json_atomic
from video_miner.logs import Progress

log = logging.getLogger(__name__)
CHUNK = 1 << 20


_DEFAULTS = upload_target_defaults()


@dataclass(frozen=True)
class UploadTarget:
    name: str
    url: str
    storage_options: dict
    key_env: str | None = None  # environment variable holding the token/secret
    verify: str = _DEFAULTS["verify"]  # sha256 (read back and hash) | size
    workers: int = _DEFAULTS["workers"]  # files in flight at once

    @classmethod
    def from_config(cls, name: str, value: str | dict) -> "UploadTarget":
        value = {"url": value} if isinstance(value, str) else dict(value)
        hub = value["url"].startswith("hf://")
        # key_env is the project-wide name; token_env, its former name, still works.
        key_env = value.get("key_env", value.get("token_env", "HF_TOKEN" if hub else None))
        # Each file is a commit on the Hub; concurrent commits to one branch conflict.
        workers = 1 if hub else int(value.get("workers", _DEFAULTS["workers"]))
        return cls(name, value["url"].rstrip("/"), dict(value.get("storage_options") or {}), key_env,
                   value.get("verify", _DEFAULTS["verify"]), workers)

    def filesystem(self):
        import fsspec

        options = dict(self.storage_options)
        if self.key_env and os.environ.get(self.key_env):
            options["token"] = os.environ[self.key_env]
        fs, root = fsspec.core.url_to_fs(self.url, **options)
        return fs, root.rstrip("/")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_remote(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def collect_files(sources: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(local path, path under the target) for every file of the given files and folders;
    a folder's files keep their layout under its target prefix. Hidden files are skipped."""
    files = []
    for local, prefix in sources:
        local_path = Path(local)
        if local_path.is_dir():
            for path in sorted(local_path.rglob("*")):
                rel = path.relative_to(local_path)
                if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                    files.append((str(path), f"{prefix}/{rel.as_posix()}".lstrip("/")))
        else:
            files.append((str(local_path), prefix or local_path.name))
    return files


def _read_journal(path: Path) -> dict[str, dict]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if entry.get("removed"):
                done.pop(entry["path"], None)
            else:
                done[entry["path"]] = entry
    return done


def upload(target: UploadTarget, files: list[tuple[str, str]], marker: str | os.PathLike,
           journal: str | os.PathLike) -> dict:
    """Upload and verify ``files``, ``target.workers`` at a time; skip those the journal
    has with the same hash that are still there with the same size. Raises on the first
    file that fails (no new files are started then); the journal keeps what was done."""
    fs, root = target.filesystem()
    journal = Path(journal)
    journal.parent.mkdir(parents=True, exist_ok=True)
    done = _read_journal(journal)
    started = time.perf_counter()
    journal_lock = threading.Lock()  # guards the journal and the progress count
    progress = Progress("files", len(files))
    failed = threading.Event()  # after a failure no new file is started

    with open(journal, "a", encoding="utf-8") as journal_fh:
        def upload_one(file: tuple[str, str]) -> tuple[dict, bool] | None:
            if failed.is_set():
                return None
            try:
                return upload_or_skip(*file)
            except BaseException:
                failed.set()
                raise

        def upload_or_skip(local: str, rel: str) -> tuple[dict, bool]:
            """The file's marker entry, and whether it had to be uploaded."""
            size = os.path.getsize(local)
            digest = sha256_file(local)
            remote = f"{root}/{rel}"
            entry = {"path": rel, "size": size, "sha256": digest}
            previous = done.get(rel)
            if previous and previous["sha256"] == digest and _remote_size(fs, remote) == size:
                with journal_lock:
                    progress.update()
                return entry, False
            fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(local, remote)
            _verify(fs, remote, size, digest, target.verify)
            with journal_lock:
                journal_fh.write(json.dumps(entry) + "\n")
                journal_fh.flush()
                progress.update()
            return entry, True

        # map yields in file order and raises the first failure; files not yet started are
        # cancelled, and the pool waits for those in flight before the journal closes.
        with ThreadPoolExecutor(max_workers=target.workers) as pool:
            outcomes = list(pool.map(upload_one, files))
        # Files an earlier upload put there that the results no longer hold (a taken-down
        # video's frames, a clip no longer kept) go from the remote copy too; files this
        # workflow never uploaded are never touched.
        current = {rel for _, rel in files}
        removed = sorted(rel for rel in done if rel not in current)
        for rel in removed:
            remote = f"{root}/{rel}"
            if fs.exists(remote):
                fs.rm(remote)
            journal_fh.write(json.dumps({"path": rel, "removed": True}) + "\n")
            journal_fh.flush()
    entries = [entry for entry, _ in outcomes]
    uploaded = [entry for entry, was_uploaded in outcomes if was_uploaded]
    record = {
        "target": target.name,
        "url": redact(target.url),
        "files": entries,
        "file_count": len(entries),
        "bytes": sum(e["size"] for e in entries),
        "uploaded": len(uploaded),
        "skipped_already_uploaded": len(entries) - len(uploaded),
        "uploaded_bytes": sum(e["size"] for e in uploaded),
        "removed": removed,
        "verify": target.verify,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(marker, record)
    return record


def _remote_size(fs, path: str) -> int | None:
    try:
        fs.invalidate_cache(path)
        return fs.info(path).get("size")
    except (FileNotFoundError, OSError):
        return None


def _verify(fs, remote: str, size: int, digest: str, mode: str) -> None:
    remote_size = _remote_size(fs, remote)
    if remote_size != size:
        raise OSError(f"upload of {remote} not verified: {remote_size} bytes there, {size} here")
    if mode == "sha256" and sha256_remote(fs, remote) != digest:
        raise OSError(f"upload of {remote} not verified: sha256 differs")
