"""Tar archives of clips as inputs: clip archives with a CSV, and the tar shards of a
dataset (on the Hugging Face Hub, in a bucket, behind https, or on disk).

One archive is one processing shard. Its members are never listed when the workflow is
parsed (that would mean fetching every shard for ``snakemake -n``): the shard's download
job fetches the archive once (fsspec: ``s3://``, ``https://``, ``hf://``, local paths are
read in place), streams it member by member and writes each video member into the
shard's download cache under an id of ours, so a member's name never becomes a path.
Every later stage reads the shard's download table as for any other shard.

Member names look like ``{source_video_id} ({start}-{end}).{ext}`` (start and end in
seconds or ``H:MM:SS(.mmm)``); the CSV (``video_id,start,end,duration``) that describes
the archive gives each member its provenance (``source_video_id``, ``source_start_s``,
``source_end_s``), empty for a member it does not describe. A missing, truncated or
corrupt archive or CSV is a failed row with its reason; the members read before the
damage are kept.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import os
import re
import shutil
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from video_miner.fsutil import printable, redact, safe_name
from video_miner.ids import is_remote, member_video_id

log = logging.getLogger(__name__)

# A member name: "<source video id> (<start>-<end>).<ext>", times in seconds or [H:]MM:SS(.fff).
_MEMBER = re.compile(r"^(?P<id>.+?) \((?P<start>[0-9:.]+)-(?P<end>[0-9:.]+)\)\.(?P<ext>[A-Za-z0-9]+)$")
_TIME = re.compile(r"^(?:(?:(?P<h>\d+):)?(?P<m>\d{1,2}):)?(?P<s>\d+(?:\.\d*)?)$")
CHUNK = 1 << 20


class ArchiveError(Exception):
    """An archive (or its CSV) that cannot be read: missing, truncated, corrupt."""


class JobError(Exception):
    """A failure of the job itself (its disk), never recorded as the input's."""


# --- names and ids -------------------------------------------------------------------------


def parse_time(text: str) -> float | None:
    """Seconds from ``12.5``, ``1:02.250``, ``0:01:02.250``; None for anything else."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    seconds = float(match["s"])
    if match["m"] is not None and (seconds >= 60 or match["h"] is not None and int(match["m"]) >= 60):
        return None
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + seconds


def parse_member_name(name: str) -> tuple[str, float, float] | None:
    """(source video id, start s, end s) from a member's file name, or None when the name
    does not follow ``{source_video_id} ({start}-{end}).{ext}`` (or end <= start)."""
    match = _MEMBER.match(PurePosixPath(name).name)
    if not match:
        return None
    start, end = parse_time(match["start"]), parse_time(match["end"])
    if start is None or end is None or end <= start or not match["id"].strip():
        return None
    return match["id"].strip(), start, end


def safe_member_name(name: str) -> str | None:
    """A member's name as a relative POSIX path to record and show: no absolute path, no
    ``..`` or ``.`` parts, control characters escaped. None when nothing is left (``/``,
    ``../..``). The result is text for tables and logs; files are written under ids."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return printable("/".join(parts)) if parts else None


# --- the CSV -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    source_video_id: str | None = None
    source_start_s: float | None = None
    source_end_s: float | None = None


def protocol_options(location: str, storage_options: dict | None) -> dict:
    """The fsspec options for ``location``'s protocol: ``storage_options`` maps a
    protocol (``s3``, ``https``, ``hf``) to its options."""
    return dict((storage_options or {}).get(location.split("://", 1)[0].lower()) or {})


def _open(location: str, storage_options: dict | None):
    """A binary file object for a local path or an fsspec URL (credentials: environment)."""
    if not is_remote(location):
        return open(location, "rb")
    import fsspec

    return fsspec.open(location, "rb", **protocol_options(location, storage_options)).open()


def read_clip_csv(location: str, source_ids: Iterable[str], storage_options: dict | None = None
                  ) -> dict[str, list[tuple[float, float]]]:
    """The (start, end) spans the CSV lists for each of ``source_ids`` (others are not
    kept: a dataset's CSV may describe millions of clips). Raises ArchiveError when it
    cannot be read or lacks ``video_id``, ``start`` or ``end``."""
    import pandas as pd

    wanted = set(source_ids)
    spans: dict[str, list[tuple[float, float]]] = {}
    try:
        with _open(location, storage_options) as fh:
            reader = pd.read_csv(fh, dtype=str, keep_default_na=False, chunksize=200_000)
            for chunk in reader:
                chunk.columns = [str(c).strip().lower() for c in chunk.columns]
                missing = {"video_id", "start", "end"} - set(chunk.columns)
                if missing:
                    raise ArchiveError(f"CSV {redact(location)} has no column {', '.join(sorted(missing))} "
                                       "(expected video_id,start,end,duration)")
                chunk = chunk[chunk["video_id"].str.strip().isin(wanted)]
                for video_id, start, end in zip(chunk["video_id"], chunk["start"], chunk["end"]):
                    s, e = parse_time(start), parse_time(end)
                    if s is not None and e is not None:
                        spans.setdefault(video_id.strip(), []).append((s, e))
    except ArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reason the CSV cannot be read is the input's
        raise ArchiveError(f"cannot read CSV {redact(location)}: {_describe(exc)}") from exc
    return spans


def match_provenance(name: str, spans: dict[str, list[tuple[float, float]]] | None,
                     tolerance_s: float) -> Provenance:
    """The provenance of a member: its name's source id and span when the CSV lists that
    span (within ``tolerance_s``), with the CSV's times; empty otherwise."""
    parsed = parse_member_name(name)
    if parsed is None or not spans:
        return Provenance()
    source_id, start, end = parsed
    for s, e in spans.get(source_id, []):
        if abs(s - start) <= tolerance_s and abs(e - end) <= tolerance_s:
            return Provenance(source_id, s, e)
    return Provenance()


# --- reading an archive --------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return f"access denied ({exc})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Counting(io.RawIOBase):
    """Counts the bytes read through it: a tar cut at a member boundary is found by its
    missing end-of-archive blocks."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _decompressed(fh):
    """The tar bytes of ``fh``: gzip, bz2 and xz by their magic bytes (their readers raise
    EOFError on a cut stream, which tarfile's own stream reader would not)."""
    head = fh.read(6)
    fh.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if head[:3] == b"BZh":
        return bz2.BZ2File(fh, "rb")
    if head == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(fh, "rb")
    return fh


@dataclass
class Member:
    raw_name: str
    name: str | None  # the cleaned name (safe_member_name)
    video_id: str
    problem: str | None = None  # why it cannot be a video, or None


def read_members(path: str | os.PathLike, archive_id: str, extensions: Iterable[str],
                 write: Callable[[Member, Any], None], skip: Callable[[Member], bool] = lambda m: False,
                 max_member_bytes: int | None = None) -> tuple[list[Member], int, str | None]:
    """Stream the archive at ``path`` once: each member whose name ends in one of
    ``extensions`` becomes a :class:`Member`; ``write(member, fileobj)`` stores a regular
    one unless ``skip(member)`` (done in an earlier run). Returns the members, how many
    other files were passed over (sidecars such as .json or .txt), and why the archive
    ended early (truncated or corrupt) or None."""
    exts = {e.lower() for e in extensions}
    members: list[Member] = []
    others = 0
    problem = None
    with open(path, "rb") as raw:
        tar_bytes = _Counting(_decompressed(raw))
        try:
            # Unbuffered: tarfile's stream reads a record at a time, so the members before
            # a damaged spot are written before the error shows.
            with tarfile.open(fileobj=tar_bytes, mode="r|") as tar:
                for info in tar:
                    if info.isdir():
                        continue
                    if PurePosixPath(info.name).suffix.lower() not in exts:
                        others += 1
                        continue
                    member = Member(info.name, safe_member_name(info.name), member_video_id(archive_id, info.name))
                    members.append(member)
                    if member.name is None:
                        member.problem = f"unsafe member name {printable(info.name)!r}"
                    elif not info.isreg():
                        member.problem = f"not a regular file in the archive ({_kind(info)})"
                    elif max_member_bytes and info.size > max_member_bytes:
                        member.problem = f"member of {info.size} bytes is over limits.download_gb"
                    elif not skip(member):
                        write(member, tar.extractfile(info))
                end = tar.offset
            tar_bytes.read()  # the rest of the stream: end-of-archive blocks and padding
            if tar_bytes.count < end + 2 * tarfile.BLOCKSIZE:
                problem = f"truncated archive: it ends without its end-of-archive blocks after {len(members)} videos"
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
            problem = _damage(exc, len(members))
    return members, others, problem


def _damage(exc: BaseException, read: int) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end of data" in text or "end-of-stream" in text:
        what = "truncated archive"
    else:
        what = "corrupt archive, or not a tar archive"
    return f"{what} ({printable(text)}) after {read} videos"


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symbolic link"
    if info.islnk():
        return "hard link"
    if info.isfifo():
        return "FIFO"
    if info.ischr() or info.isblk():
        return "device"
    return "not a file"


def fetch_archive(location: str, dest: str | os.PathLike, storage_options: dict | None = None,
                  retries: int = 0, backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> int:
    """Copy the archive at ``location`` (an fsspec URL; ``storage_options`` by protocol,
    see :func:`protocol_options`) to ``dest`` atomically, retrying transient errors;
    returns its size. A copy shorter than the size the store reports is a truncated fetch.
    Raises ArchiveError with the reason."""
    import fsspec

    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    attempt = 0
    while True:
        attempt += 1
        try:
            fs, path = fsspec.core.url_to_fs(location, **protocol_options(location, storage_options))
            with fs.open(path, "rb") as src, open(partial, "wb") as out:
                expected = getattr(src, "size", None)  # what the store says (None: unknown)
                shutil.copyfileobj(src, out, CHUNK)
            size = partial.stat().st_size
            if expected is not None and size < expected:
                raise ArchiveError(f"truncated fetch of the archive: {size} of {expected} bytes")
            os.replace(partial, dest)
            return size
        except Exception as exc:  # noqa: BLE001 - every store's errors: retried or recorded
            partial.unlink(missing_ok=True)
            permanent = _permanent(exc, location)
            if permanent:
                raise ArchiveError(permanent) from exc
            # fsspec's HTTP filesystem wraps every error in FileNotFoundError: say the cause.
            cause = _root_cause(exc) if isinstance(exc, FileNotFoundError) else exc
            if attempt > retries:
                reason = str(exc) if isinstance(exc, ArchiveError) else f"cannot fetch the archive: {_describe(cause)}"
                raise ArchiveError(printable(reason)) from exc
            log.warning("%s: fetch attempt %d failed (%s); retrying", redact(location), attempt, _describe(cause))
            sleep(backoff_s * 2 ** (attempt - 1))


_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def _root_cause(exc: BaseException) -> BaseException:
    seen = [exc]
    while (cause := seen[-1].__cause__ or seen[-1].__context__) is not None and cause not in seen:
        seen.append(cause)
    return seen[-1]


def _permanent(exc: BaseException, location: str) -> str | None:
    """Why a fetch can never succeed (not found, access denied), or None when trying
    again may help. fsspec's HTTP filesystem reports every failed request as
    FileNotFoundError: the response status it carries decides."""
    causes, cause = [], exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(getattr(c, "status", None) in _TRANSIENT_STATUS or isinstance(c, (ConnectionError, TimeoutError))
           for c in causes[1:]) or any(type(c).__name__.startswith("ClientConnect") for c in causes):  # aiohttp's
        return None
    if isinstance(exc, FileNotFoundError):
        detail = f" ({printable(_describe(causes[-1]))})" if len(causes) > 1 else ""
        return f"archive not found: {redact(location)}{detail}"
    if isinstance(exc, PermissionError):
        return f"access to the archive denied: {redact(location)} ({exc})"
    return None


def member_extension(name: str) -> str:
    return safe_name(PurePosixPath(name).suffix.lstrip(".").lower() or "video", 10)


# --- one archive shard ---------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveSettings:
    """The ``archives`` section as a shard job needs it, and the extensions that make a
    member a video (``local_extensions``)."""
    extensions: tuple[str, ...]
    storage_options: dict
    cleanup: bool = True
    match_tolerance_s: float = 0.01

    @classmethod
    def from_params(cls, params: dict) -> "ArchiveSettings":
        return cls(tuple(params["extensions"]), dict(params.get("storage_options") or {}),
                   bool(params.get("cleanup", True)), float(params.get("match_tolerance_s", 0.01)))


def ingest_archive(source: dict, cache, settings: ArchiveSettings, retries: int = 0, backoff_s: float = 1.0,
                   max_member_bytes: int | None = None) -> list[dict]:
    """The records of one archive shard (``source``: video_id, location, csv): one per
    video member (``status`` ok or failed with its reason), plus one for the archive
    itself when it, or its CSV, could not be read whole. Members land in ``cache.root``
    as ``<id>.<ext>``; a rerun takes the members an earlier run finished and fetches
    the archive again only when a member is missing. A fetched copy is removed at the
    end when ``settings.cleanup`` is on; a local archive is read in place."""
    from video_miner.shardjob import file_identity

    archive_id, location = source["video_id"], source["location"]
    remote = is_remote(location)
    # A local archive replaced since (Snakemake reruns the job: it is an input) is read
    # again whole; a remote one is taken to be immutable (a new version, a new name).
    identity = None if remote else file_identity(location)
    done = cache.load(archive_id)
    if done is not None and done.get("identity") != identity:
        for member_id in done["members"]:
            cache.forget(member_id)
        done = None

    def finished(member_id: str) -> dict | None:
        record = cache.load(member_id)
        if record is not None and (record["status"] != "ok" or Path(record["file"]).is_file()):
            return record
        return None

    members: list[dict] | None = None
    problem = None
    if done is not None and all(finished(m) is not None for m in done["members"]):
        members = [finished(m) for m in done["members"]]
        problem = done["problem"]
        log.info("%s: all %d members done in an earlier run", redact(location), len(members))
    else:
        copy = cache.root / f".{archive_id}.tar"
        try:
            if remote:
                if not copy.is_file():
                    log.info("fetching %s", redact(location))
                    size = fetch_archive(location, copy, settings.storage_options, retries, backoff_s)
                    log.info("fetched %d bytes", size)
                path = copy
            else:
                path = Path(location)
                if not path.is_file():
                    raise ArchiveError(f"archive {'not found' if not path.exists() else 'is not a regular file'}: "
                                       f"{printable(location)}")

            def write(member: Member, fileobj) -> None:
                target = cache.root / f"{member.video_id}.{member_extension(member.name)}"
                partial = target.with_name(f".{target.name}.partial")
                try:
                    out = open(partial, "wb")
                except OSError as exc:
                    raise JobError(f"cannot write {partial}: {exc}") from exc
                try:
                    with out:
                        # Read errors are the archive's (recorded as damage); write errors
                        # are the job's (a full disk): raised, so the job fails and reruns.
                        while data := fileobj.read(CHUNK):
                            try:
                                out.write(data)
                            except OSError as exc:
                                raise JobError(f"cannot write {partial}: {exc}") from exc
                    os.replace(partial, target)
                finally:
                    partial.unlink(missing_ok=True)
                cache.save(member.video_id, {"video_id": member.video_id, "status": "ok", "file": target.as_posix(),
                                             "filesize": target.stat().st_size, "name": member.name})

            found, others, problem = read_members(path, archive_id, settings.extensions, write,
                                                  skip=lambda m: finished(m.video_id) is not None,
                                                  max_member_bytes=max_member_bytes)
            members = []
            for member in found:
                if member.problem:
                    record = {"video_id": member.video_id, "status": "failed", "reason": member.problem,
                              "name": member.name or printable(member.raw_name)}
                    cache.save(member.video_id, record)
                    members.append(record)
                else:
                    members.append(finished(member.video_id) or {
                        "video_id": member.video_id, "status": "failed", "name": member.name,
                        "reason": "member could not be read from the archive"})
            if problem is None and not members:
                problem = f"no videos in the archive ({others} other files; videos end in {', '.join(settings.extensions)})"
            log.info("%s: %d videos, %d other files passed over%s", redact(location), len(members), others,
                     f"; {problem}" if problem else "")
            cache.save(archive_id, {"members": [m["video_id"] for m in members], "problem": problem,
                                    "identity": identity})
            if remote and settings.cleanup:
                copy.unlink(missing_ok=True)
        except ArchiveError as exc:
            problem = str(exc)
    records = [{**m, "location": f"{location}#{m['name']}", "title": PurePosixPath(m["name"]).stem}
               for m in members or []]
    csv = source.get("csv")
    if csv and records:
        try:
            parsed = [parse_member_name(r["name"]) for r in records]
            spans = read_clip_csv(csv, {p[0] for p in parsed if p}, settings.storage_options)
            for record in records:
                record.update(match_provenance(record["name"], spans, settings.match_tolerance_s).__dict__)
        except ArchiveError as exc:
            problem = f"{problem}; {exc}" if problem else str(exc)
    if problem:
        log.error("%s: %s", redact(location), problem)
        records.append({"video_id": archive_id, "status": "failed", "location": location, "title": None,
                        "reason": problem, "transient": problem.startswith("cannot fetch")})
    return records
