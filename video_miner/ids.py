"""Video ids, derived offline from URLs and paths.

YouTube URLs (every common form) map to their 11-character video id, so the same video
listed as ``watch?v=``, ``youtu.be/`` or ``shorts/`` is one video. Anything else gets a
stable hash of its normalised URL (``url-``) or path (``file-``); a tar archive and its
members ``tar-``. Ids are safe as path
components by construction: ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit, urlunsplit

YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
VIDEO_ID_PATTERN = r"[A-Za-z0-9_-]+"
_HASH_CHARS = 16  # 64 bits: collisions stay negligible at millions of videos

_YOUTUBE_HOSTS = {
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtube-nocookie.com",
    "www.youtube-nocookie.com",
}
_SHORT_HOSTS = {"youtu.be", "www.youtu.be"}
_PATH_FORMS = ("shorts", "embed", "v", "e", "live")


class InvalidURL(ValueError):
    """A URL the workflow refuses (wrong scheme, no host)."""


def normalize_url(url: str) -> str:
    """Canonical form of an http(s) URL: lower-case scheme and host, no default port,
    no fragment, ``/`` for an empty path. Raises :class:`InvalidURL` for anything else."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {url!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(
            f"only http and https URLs are accepted, got {url!r}; list local files under local_videos"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidURL(f"URL has no host: {url!r}")
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    if parts.username:
        raise InvalidURL(f"credentials in URLs are not accepted (they would end up in logs): {host}")
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def youtube_id(url: str) -> str | None:
    """The YouTube video id of ``url``, or None when it is not a YouTube video URL."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    candidate = None
    if host in _SHORT_HOSTS and segments:
        candidate = segments[0]
    elif host in _YOUTUBE_HOSTS:
        if segments[:1] == ["watch"] or not segments:
            candidate = (parse_qs(parts.query).get("v") or [None])[0]
        elif len(segments) >= 2 and segments[0] in _PATH_FORMS:
            candidate = segments[1]
    if candidate and YOUTUBE_ID.match(candidate):
        return candidate
    return None


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def video_id_for_url(url: str) -> str:
    """Video id for a URL: the YouTube id, else ``url-<hash of the normalised URL>``."""
    yt = youtube_id(url)
    if yt:
        return yt
    return "url-" + _short_hash(normalize_url(url))


def normalize_path(path: str | os.PathLike, root: str | os.PathLike = ".") -> str:
    """Stable textual form of a local path: relative to ``root`` (the workflow's working
    directory) when inside it, absolute otherwise; ``/`` separators, no ``..``."""
    absolute = Path(os.path.abspath(os.path.join(root, os.fspath(path))))
    root_abs = Path(os.path.abspath(root))
    try:
        return PurePosixPath(absolute.relative_to(root_abs)).as_posix()
    except ValueError:
        return absolute.as_posix()


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(location: str) -> bool:
    """Whether an archive's location is an fsspec URL (``s3://``, ``https://``, ``hf://``)."""
    return bool(_SCHEME.match(location)) and not location.startswith("file://")


def normalize_location(entry: str, root: str | os.PathLike = ".") -> str:
    """An archive's location as recorded: a URL as given (without surrounding spaces), a
    local path as :func:`normalize_path` makes it. Raises ValueError for credentials in a
    URL (they would reach the logs)."""
    entry = entry.strip()
    if is_remote(entry):
        without = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", entry)
        if without != entry:
            raise ValueError("credentials in archive URLs are not accepted (they would end up in logs): "
                             f"{without}; give them in the environment")
        return entry
    return normalize_path(entry.removeprefix("file://"), root)


def video_id_for_path(path: str | os.PathLike, root: str | os.PathLike = ".") -> str:
    return "file-" + _short_hash(normalize_path(path, root))


def archive_video_id(location: str) -> str:
    """The id of a tar archive itself (its row when it cannot be read): ``tar-<hash of
    its location>``."""
    return "tar-" + _short_hash(location)


def member_video_id(archive_id: str, raw_name: str) -> str:
    """An archive member's id: the archive's id and a hash of the member's raw name (two
    members whose names clean to the same text stay two videos; a name never becomes a
    path)."""
    digest = hashlib.sha256(raw_name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{archive_id}-{digest}"


def frame_id(video_id: str, frame_index: int) -> str:
    """A frame's id across the run: ``<video_id>/<frame index, 8 digits>``."""
    return f"{video_id}/{frame_index:08d}"


def video_of_frame(frame: str) -> str:
    """The video id in a frame id (the inverse of :func:`frame_id`'s first part)."""
    return frame.rsplit("/", 1)[0]


def query_slug(query: str) -> str:
    """A path-safe, unique name for a query's cached result."""
    from video_miner.fsutil import safe_name

    digest = hashlib.sha256(query.encode()).hexdigest()[:8]
    return f"{safe_name(query.lower(), 40).strip('_') or 'query'}-{digest}"


def is_local_model(model: str) -> bool:
    """A folder path rather than a hub id ("org/name")."""
    return os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") != 1
