"""Download videos with yt-dlp's Python API, or ingest local files.

Every outcome is a record, a row of the shard's download table that downstream stages
read. A permanent failure (404, private, unsupported URL, not a video, a playlist) is recorded,
not raised, so one bad URL never stops the run; transient ones (timeouts, 5xx, 429,
refused connections) are retried with exponential backoff first.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

import pyarrow as pa

from video_miner.archives import ArchiveSettings
from video_miner.defaults import section_defaults
from video_miner.fsutil import safe_name
from video_miner.ids import youtube_id
from video_miner.images import KIND as IMAGES, folder_bytes, folder_images
from video_miner.workers import Isolation, Limits

log = logging.getLogger(__name__)

_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_TEXT = re.compile(
    r"timed? ?out|temporar|connection (reset|refused|aborted)|remote end closed|incompleteread|"
    r"eof occurred|network is unreachable|http error (5\d\d|429|408)",
    re.IGNORECASE,
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_DEFAULTS = section_defaults("download")


@dataclass(frozen=True)
class DownloadOptions:
    max_height: int = _DEFAULTS["max_height"]
    format: str | None = _DEFAULTS["format"]  # a yt-dlp format selector; overrides max_height/audio
    audio: bool = _DEFAULTS["audio"]  # frames need no audio; video-only streams also need no ffmpeg merge
    socket_timeout_s: float = _DEFAULTS["socket_timeout_s"]
    retries: int = _DEFAULTS["retries"]
    retry_backoff_s: float = _DEFAULTS["retry_backoff_s"]
    cookies_file: str | None = _DEFAULTS["cookies_file"]
    proxy: str | None = _DEFAULTS["proxy"]
    rate_limit: str | int | None = _DEFAULTS["rate_limit"]  # bytes/s, or yt-dlp's "5M" form
    sleep_interval_s: float = _DEFAULTS["sleep_interval_s"]
    max_filesize: str | int | None = _DEFAULTS["max_filesize"]

    @classmethod
    def from_config(cls, section: dict) -> "DownloadOptions":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})

    def format_selector(self) -> str:
        if self.format:
            return self.format
        h = self.max_height
        if self.audio:
            return f"bv*[height<=?{h}]+ba/b[height<=?{h}]/bv*+ba/b"
        return f"bv[height<=?{h}]/b[height<=?{h}]/bv/b"


class _YtdlpLogger:
    """Routes yt-dlp's messages into logging (the rule's log file), each line tagged with
    its video: a shard job fetches several at once."""

    def __init__(self, video_id: str = ""):
        self.tag = f"{video_id}: " if video_id else ""

    def debug(self, msg: str) -> None:
        if not msg.startswith("[download]"):  # per-chunk progress lines would flood logs
            log.debug("%s%s", self.tag, msg)

    def info(self, msg: str) -> None:
        log.info("%s%s", self.tag, msg)

    def warning(self, msg: str) -> None:
        log.warning("%s%s", self.tag, msg)

    def error(self, msg: str) -> None:
        log.error("%s%s", self.tag, msg)


def _bytes(value: str | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from yt_dlp.utils import parse_bytes

    parsed = parse_bytes(str(value))
    if parsed is None:
        raise ValueError(f"not a byte size: {value!r} (use e.g. 500K, 5M, 2G)")
    return parsed


def ytdlp_params(options: DownloadOptions, outtmpl: str, video_id: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {
        "format": options.format_selector(),
        "outtmpl": {"default": outtmpl},
        "socket_timeout": options.socket_timeout_s,
        "retries": options.retries,
        "fragment_retries": options.retries,
        "noplaylist": True,
        # A playlist URL resolves to its entries' URLs only, so nothing is downloaded
        # under one video's id; it is then recorded as "a playlist, not a video".
        "extract_flat": "in_playlist",
        "noprogress": True,
        "quiet": True,
        "logger": _YtdlpLogger(video_id),
        "overwrites": True,
        "continuedl": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    optional = {
        "cookiefile": options.cookies_file,
        "proxy": options.proxy,
        "ratelimit": _bytes(options.rate_limit),
        "sleep_interval": options.sleep_interval_s or None,
        "max_filesize": _bytes(options.max_filesize),
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


class DownloadFailed(Exception):
    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def _raised_in(exc: BaseException, module: str) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is code of ``module``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == module


# yt-dlp's words for a response without a body.
_NO_DATA = "Did not get any data blocks"


def classify_error(exc: BaseException) -> DownloadFailed:
    """Turn a yt-dlp error into a reason and whether retrying may help."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    reason = _ANSI.sub("", str(exc)).removeprefix("ERROR: ").strip() or type(exc).__name__
    if reason == _NO_DATA:
        return DownloadFailed("empty file", False)
    cause: BaseException | None = exc
    seen = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, HTTPError):
            return DownloadFailed(reason, cause.status in _TRANSIENT_STATUS)
        if isinstance(cause, TransportError):
            return DownloadFailed(reason, True)
        if isinstance(cause, UnsupportedError) and _raised_in(cause, "yt_dlp.extractor.generic"):
            # The generic extractor gives up only on markup: anything else it downloads as
            # a direct link (and the file says what it is: video.open_video).
            return DownloadFailed("not a video: the server sent an HTML page with no video yt-dlp can find", False)
        inner = getattr(cause, "exc_info", None)
        cause = inner[1] if inner else (cause.__cause__ or cause.__context__)
    return DownloadFailed(reason, bool(_TRANSIENT_TEXT.search(reason)))


# Paths that name a media file: yt-dlp's generic extractor fetches them directly.
DIRECT_MEDIA = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}


def extractor_key(url: str) -> str | None:
    """The one yt-dlp extractor a URL needs, when it is plain: asking each of yt-dlp's
    ~1,900 extractors whether it matches costs about a second per job."""
    if youtube_id(url):
        return "Youtube"
    if PurePosixPath(urlsplit(url).path).suffix.lower() in DIRECT_MEDIA:
        return "Generic"
    return None


_downloaders = threading.local()


@contextmanager
def _downloader(options: DownloadOptions, outtmpl: str, video_id: str):
    """A YoutubeDL for one fetch. Without cookies each thread reuses one across videos,
    as yt-dlp's own command line does for its URLs: making one costs ~0.15 s of CPU,
    more than fetching a short clip. With cookies each fetch gets its own, on a private
    copy of the file (yt-dlp writes cookies back when it closes)."""
    import yt_dlp

    params = ytdlp_params(options, outtmpl, video_id)
    if options.cookies_file:
        with _private_cookies(options.cookies_file) as cookies:
            with yt_dlp.YoutubeDL({**params, "cookiefile": cookies}) as ydl:
                yield ydl
        return
    reused = getattr(_downloaders, "by_options", {})
    ydl = reused.get(options)
    if ydl is None:
        ydl = reused[options] = yt_dlp.YoutubeDL(params)
        _downloaders.by_options = reused
    ydl.params["outtmpl"]["default"] = outtmpl
    ydl.params["logger"].tag = params["logger"].tag
    yield ydl


def _fetch_once(url: str, work_dir: Path, video_id: str, options: DownloadOptions) -> tuple[Path, dict]:
    try:
        with _downloader(options, str(work_dir / f"{video_id}.%(ext)s"), video_id) as ydl:
            info = ydl.sanitize_info(ydl.extract_info(url, download=True, ie_key=extractor_key(url)))
    except Exception as exc:  # yt-dlp raises DownloadError, but extractors leak others
        raise classify_error(exc) from exc
    if info.get("_type") == "playlist":
        entries = len(info.get("entries") or [])
        raise DownloadFailed(f"URL is a playlist ({entries} entries), not a video: list its videos instead", False)
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    files = [f for f in files if f.is_file()] or sorted(
        f for f in work_dir.glob(f"{video_id}.*") if f.suffix not in (".part", ".ytdl"))  # not a killed run's
    if not files:
        raise DownloadFailed("yt-dlp finished without a file (filtered by max_filesize or format?)", False)
    return files[0], info


@contextmanager
def _private_cookies(cookies_file: str | None) -> Iterator[str | None]:
    """A private copy of the cookies file for one fetch: yt-dlp writes cookies back when
    it closes, and a shard job fetches several videos at once."""
    if not cookies_file:
        yield None
        return
    fd, copy = tempfile.mkstemp(prefix="video-miner-cookies.", suffix=".txt")  # 0600, outside results/
    os.close(fd)
    try:
        shutil.copyfile(cookies_file, copy)
        yield copy
    finally:
        os.unlink(copy)


def _place(src: Path, out_dir: Path, video_id: str, ext: str, mode: str) -> Path:
    """Put ``src`` at ``out_dir/<id>.<ext>`` by ``mode`` (move, hardlink or copy),
    removing earlier copies of any extension."""
    ext = safe_name(ext.lstrip(".").lower() or "video", 10)
    dest = out_dir / f"{video_id}.{ext}"
    for old in out_dir.glob(f"{video_id}.*"):
        if old != dest and old.suffix != ".json" and old.is_file():  # the cache's record stays
            old.unlink()
    tmp = out_dir / f".{video_id}.{ext}.partial"
    tmp.unlink(missing_ok=True)
    if mode == "move":
        os.replace(src, tmp)
    elif mode == "hardlink":  # raises where no link can be made
        os.link(src, tmp)
    else:
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return dest


def download_url(url: str, out_dir: str | os.PathLike, video_id: str, options: DownloadOptions,
                 sleep: Callable[[float], None] = time.sleep) -> dict:
    """Download one URL into ``out_dir``; returns its record (never raises for a bad URL)."""
    out_dir = Path(out_dir)
    work_dir = out_dir / f".{video_id}.download"
    record: dict[str, Any] = {"video_id": video_id, "source": "url", "url": url}
    started = time.perf_counter()
    attempts = 0
    max_attempts = options.retries + 1
    while True:
        attempts += 1
        work_dir.mkdir(parents=True, exist_ok=True)
        try:
            path, info = _fetch_once(url, work_dir, video_id, options)
            break
        except DownloadFailed as failure:
            if failure.transient and attempts < max_attempts:
                delay = options.retry_backoff_s * 2 ** (attempts - 1)
                log.warning("%s: attempt %d/%d failed (%s); retrying in %.1fs", video_id, attempts, max_attempts,
                            failure.reason, delay)
                sleep(delay)
                continue
            shutil.rmtree(work_dir, ignore_errors=True)
            log.error("%s: download failed: %s", video_id, failure.reason)
            record.update(status="failed", reason=failure.reason, transient=failure.transient, attempts=attempts,
                          download_seconds=round(time.perf_counter() - started, 3))
            return record
    dest = _place(path, out_dir, video_id, path.suffix, "move")
    shutil.rmtree(work_dir, ignore_errors=True)
    record.update(
        status="ok",
        reason=None,
        attempts=attempts,
        file=dest.as_posix(),
        filesize=dest.stat().st_size,
        title=info.get("title"),
        channel=info.get("channel") or info.get("uploader"),
        uploader=info.get("uploader"),
        upload_date=info.get("upload_date"),
        license=info.get("license"),
        extractor=info.get("extractor_key"),
        webpage_url=info.get("webpage_url") or url,
    )
    record["download_seconds"] = round(time.perf_counter() - started, 3)
    return record


def ingest_local(path: str | os.PathLike, out_dir: str | os.PathLike, video_id: str, mode: str = "link") -> dict:
    """Bring a local video into ``out_dir`` by hard link (``link``) or ``copy``, or read
    it where it is (``in_place``, and ``link`` where no hard link can be made: another
    filesystem). An in-place record's ``file`` is the user's path, never moved or removed."""
    src = Path(path)
    record: dict[str, Any] = {"video_id": video_id, "source": "local", "path": src.as_posix(), "title": src.stem}
    started = time.perf_counter()
    if not src.is_file():
        record.update(status="failed", reason=f"local file not found: {src}", transient=False)
        return record
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    dest = None
    if mode == "link":
        try:
            dest = _place(src, Path(out_dir), video_id, src.suffix, "hardlink")
        except OSError:  # another filesystem, or links not allowed: read it where it is
            pass
    elif mode == "copy":
        dest = _place(src, Path(out_dir), video_id, src.suffix, "copy")
    if dest is None:
        record.update(status="ok", reason=None, file=src.as_posix(), filesize=src.stat().st_size, in_place=True)
    else:
        record.update(status="ok", reason=None, file=dest.as_posix(), filesize=dest.stat().st_size)
    record["download_seconds"] = round(time.perf_counter() - started, 3)
    return record


def ingest_image_folder(folder: str, video_id: str, extensions: Sequence[str]) -> dict:
    """An image folder is not copied: its row records the folder (``file``) and the bytes
    of its images; extraction reads them there."""
    src = Path(folder)
    record: dict[str, Any] = {"video_id": video_id, "source": IMAGES, "title": src.name}
    if not src.is_dir():
        return {**record, "status": "failed", "reason": f"image folder not found: {folder}", "transient": False}
    if not folder_images(src, extensions):
        return {**record, "status": "failed", "reason": f"no images in {folder}", "transient": False}
    return {**record, "status": "ok", "reason": None, "file": src.as_posix(),
            "filesize": folder_bytes(src, extensions), "download_seconds": 0.0}


# What the site said and the file that arrived; what the file is (codec, size, duration,
# ...) is the probe stage's (video_miner.probe.PROBE_FIELDS).
DOWNLOAD_FIELDS = (
    pa.field("source", pa.string(), nullable=False),  # url | local
    pa.field("location", pa.string(), nullable=False),  # the URL or local path it came from
    pa.field("file", pa.string()),  # the video in results/download/<shard>/
    pa.field("filesize", pa.int64()),
    pa.field("title", pa.string()),
    pa.field("channel", pa.string()),
    pa.field("uploader", pa.string()),
    pa.field("upload_date", pa.string()),
    pa.field("license", pa.string()),  # as the site states it (yt-dlp's ``license``), else empty
    pa.field("extractor", pa.string()),
    pa.field("webpage_url", pa.string()),
    pa.field("transient", pa.bool_()),  # the failure may go away on a later run
    pa.field("attempts", pa.int32()),
    pa.field("seconds", pa.float64()),
    # A member of a tar archive (source "archive"): the archive it came from and, when
    # the archive's CSV describes the clip, the source video and the span it was cut from.
    pa.field("archive", pa.string()),
    pa.field("source_video_id", pa.string()),
    pa.field("source_start_s", pa.float64()),
    pa.field("source_end_s", pa.float64()),
)


_WHAT_TO_FETCH = ("max_height", "format", "audio", "max_filesize")


def _adopt_from_nearby_shards(cache, video_ids: list[str], reusable) -> None:
    """Take finished downloads from the caches of nearby shards: a line inserted in the
    middle of a list moves later videos into the next shard, which must not fetch them
    again. The file is hard-linked, so the other shard may prune its copy."""
    from video_miner.shardjob import link_file

    for video_id in video_ids:
        if (own := cache.load(video_id)) is not None and reusable(own):
            continue
        for record in cache.nearby(video_id):
            if record.get("status") == "ok" and reusable(record):
                if not record.get("in_place"):  # a video read in place has no file of ours
                    target = cache.root / Path(record["file"]).name
                    link_file(record["file"], target)
                    record = {**record, "file": target.as_posix()}
                cache.save(video_id, record)
                break


def _bytes_under(folder: Path) -> int:
    """Bytes in the files under ``folder``, which a running download may rename or
    remove at any moment (it is 0 then)."""
    total = 0
    for parent, _, names in os.walk(folder):  # os.walk ignores a folder that vanished
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def download_shard(sources: list[dict], out_dir: str | os.PathLike, cache_dir: str | os.PathLike,
                   options: DownloadOptions, local_mode: str = "link", keep_videos: bool = True,
                   workers: int = 1, limits: Limits | None = None,
                   archives: ArchiveSettings | None = None,
                   image_extensions: Sequence[str] = ()) -> tuple[pa.Table, dict]:
    """Fetch a shard's videos (``sources``: video_id, kind, location), ``workers`` at a
    time in worker processes under ``limits`` (default: the config's), into ``out_dir``:
    one row per video, failures with their reason. Each video is first fetched into the
    shard's cache, so a killed job keeps what it finished; the cache keeps a hard link to
    the file unless ``keep_videos`` is false. A shard of a tar archive (one ``archive``
    source, ``archives`` its settings) has a row per video member instead."""
    from video_miner.shardjob import VideoCache, cached_map, file_identity, fingerprint

    limits = limits or Limits.from_config({})
    if any(s["kind"] == "archive" for s in sources):
        return _archive_shard(sources, out_dir, cache_dir, options, keep_videos, limits, archives)

    by_id = {s["video_id"]: s for s in sources}
    # What decides which file arrives keys the cache: a new timeout or proxy reruns the job
    # but takes every finished video from it. A failure is reused only under the very same
    # options (new cookies or a proxy may get past it).
    cache = VideoCache(cache_dir, {**{k: getattr(options, k) for k in _WHAT_TO_FETCH}, "local_mode": local_mode})
    all_options = fingerprint(options.__dict__)
    cache.prune(by_id)

    def reusable(record: dict) -> bool:
        source = by_id[record["video_id"]]
        if source["kind"] == "local" and record.get("source_file") != file_identity(source["location"]):
            return False  # the user's file changed
        if source["kind"] == IMAGES:
            return False  # recording a folder costs a listing: done every run
        if record.get("status") != "ok":
            return not record.get("transient") and record.get("options") == all_options
        return Path(record["file"]).is_file()  # keep_videos false moved it on: fetch again

    def fetch(video_id: str) -> dict:
        source = by_id[video_id]
        if source["kind"] == IMAGES:
            return ingest_image_folder(source["location"], video_id, image_extensions)
        if source["kind"] == "local":
            record = ingest_local(source["location"], cache.root, video_id, local_mode)
            return {**record, "source_file": file_identity(source["location"])}
        return {**download_url(source["location"], cache.root, video_id, options), "options": all_options}

    def failed(video_id: str, reason: str) -> dict:
        return {"video_id": video_id, "status": "failed", "reason": reason, "transient": True}

    def too_big(video_id: str) -> str | None:
        # Bytes on disk, not a size the server announced: a live stream or a server that
        # never ends its response is stopped too.
        if limits.download_gb and _bytes_under(cache.root / f".{video_id}.download") > limits.download_gb * 2**30:
            return f"download stopped at the {limits.download_gb:g} GB limit"
        return None

    isolation = Isolation("download", "downloader", timeout_s=lambda video_id: limits.download_s,
                          memory_bytes=limits.memory_bytes, watch=too_big)
    if any(s["kind"] == "url" for s in sources):
        # Made once here, the workers inherit it when they fork instead of each paying
        # ~0.5 s of CPU for yt-dlp's import, its instance and its extractors.
        with _downloader(options, str(cache.root / "%(id)s.%(ext)s"), "") as ydl:
            for key in {extractor_key(s["location"]) for s in sources if s["kind"] == "url"} - {None}:
                ydl.get_info_extractor(key)
    _adopt_from_nearby_shards(cache, list(by_id), reusable)
    records = cached_map(cache, list(by_id), fetch, workers, "downloads", reusable=reusable, failed=failed,
                         isolation=isolation)
    return _shard_rows(records, out_dir, keep_videos,
                       lambda video_id, record: (by_id[video_id]["kind"], by_id[video_id]["location"]))


def _shard_rows(records: dict[str, dict], out_dir: str | os.PathLike, keep_videos: bool,
                where: Callable[[str, dict], tuple[str, str]]) -> tuple[pa.Table, dict]:
    """The shard's table from its records, the kept videos linked (or, with
    ``keep_videos`` false, moved) from the cache into ``out_dir``; ``where(video_id,
    record)``: its source kind and location."""
    from video_miner.shardjob import link_file
    from video_miner.tables.video import VIDEO

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for video_id, record in records.items():
        row = {key: record.get(key) for key in VIDEO.schema(*DOWNLOAD_FIELDS).names}
        source, location = where(video_id, record)
        row.update(video_id=video_id, source=source, location=location, kept=record.get("status") == "ok",
                   reason=record.get("reason") or "", seconds=record.get("download_seconds"))
        # an in-place video or an image folder stays where it is
        if row["kept"] and not record.get("in_place") and source != IMAGES:
            target = Path(out_dir, Path(record["file"]).name)
            if keep_videos:
                link_file(record["file"], target)
            else:
                os.replace(record["file"], target)
            row["file"] = target.as_posix()
        rows.append(row)
    ok = sum(r["kept"] for r in rows)
    return VIDEO.table(rows, *DOWNLOAD_FIELDS), {"videos": len(rows), "ok": ok, "failed": len(rows) - ok}


def _archive_shard(sources: list[dict], out_dir: str | os.PathLike, cache_dir: str | os.PathLike,
                   options: DownloadOptions, keep_videos: bool, limits: Limits,
                   settings: ArchiveSettings | None) -> tuple[pa.Table, dict]:
    """A tar archive's shard: its video members (see :mod:`video_miner.archives`)."""
    from video_miner.archives import ingest_archive
    from video_miner.shardjob import VideoCache

    if len(sources) != 1 or settings is None:
        raise ValueError("an archive shard holds one archive, and needs the archives settings")
    source = sources[0]
    max_bytes = int(limits.download_gb * 2**30) if limits.download_gb else None
    # What decides which members arrive as which files keys the cache.
    cache = VideoCache(cache_dir, {"extensions": sorted(settings.extensions), "max_member_bytes": max_bytes})
    started = time.perf_counter()
    records = ingest_archive(source, cache, settings, options.retries, options.retry_backoff_s, max_bytes)
    seconds = round(time.perf_counter() - started, 3)
    for record in records:
        record.update(archive=source["location"], download_seconds=seconds if record is records[0] else None)
    return _shard_rows({r["video_id"]: r for r in records}, out_dir, keep_videos,
                       lambda video_id, record: ("archive", record["location"]))
