"""Collect the workflow's videos from the config, offline and fast.

Runs when Snakemake parses the workflow (also for ``snakemake -n``), so it touches no
network and does O(1) work per URL. Inputs are merged in config order; the first
listing of a video wins and later ones count as duplicates. URLs that cannot be used are
not fatal: they are returned as rejected inputs with the reason, and the summary lists them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from video_miner.fsutil import safe_name
from video_miner.ids import InvalidURL, query_slug, normalize_path, normalize_url, video_id_for_path, video_id_for_url, youtube_id


# A comment starts a line or follows white space; a '#' inside a URL is its fragment.
_COMMENT = re.compile(r"(?:^|\s)#")


class ConfigError(ValueError):
    """A configuration problem found before any job runs."""


@dataclass(frozen=True)
class VideoSource:
    video_id: str
    kind: str  # "url" or "local"
    location: str  # normalised URL, or path relative to the working directory
    origin: str  # where it was listed, e.g. "urls[3]" or "lists/a.txt:12"
    group: str  # the list it belongs to ("urls", a url file, a local_videos entry)


@dataclass
class VideoCollection:
    videos: dict[str, VideoSource] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)
    duplicates: int = 0

    def add(self, source: VideoSource) -> None:
        if source.video_id in self.videos:
            self.duplicates += 1
        else:
            self.videos[source.video_id] = source

    def reject(self, text: str, origin: str, reason: str) -> None:
        self.rejected.append({"input": text, "origin": origin, "reason": reason})

def read_url_file(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, URL) for each URL line: blank lines and ``#`` comments skipped."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = _COMMENT.split(line, 1)[0].strip()
            if text:
                yield lineno, text


def canonical_url(url: str) -> str:
    yt = youtube_id(url)
    return f"https://www.youtube.com/watch?v={yt}" if yt else normalize_url(url)


def _add_url(collection: VideoCollection, url: str, origin: str, group: str) -> None:
    try:
        collection.add(VideoSource(video_id_for_url(url), "url", canonical_url(url), origin, group))
    except InvalidURL as exc:
        collection.reject(url, origin, str(exc))


def _local_files(entry: str, root: str, extensions: Iterable[str]) -> list[str]:
    path = Path(root, entry)
    exts = {e.lower() for e in extensions}
    if path.is_dir():
        return sorted(
            os.path.relpath(p, root) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts
        )
    if path.is_file() or path.suffix.lower() in exts:
        # A listed video file that does not exist yet may be made by a rule (the demo's are).
        return [entry]
    raise ConfigError(f"local_videos: {entry!r} is neither a folder nor a video file ({', '.join(sorted(exts))})")


def collect_videos(config: dict, root: str = ".") -> VideoCollection:
    """All videos named by ``urls``, ``url_files``, ``local_videos``, the video sheet and
    the cached results of ``search.queries``, in that order."""
    collection = VideoCollection()
    for i, url in enumerate(config.get("urls") or []):
        _add_url(collection, url, f"urls[{i}]", "urls")
    for list_file in config.get("url_files") or []:
        try:
            lines = list(read_url_file(Path(root, list_file)))
        except OSError as exc:
            raise ConfigError(f"url_files: cannot read {list_file!r}: {exc.strerror or exc}") from exc
        for lineno, url in lines:
            _add_url(collection, url, f"{list_file}:{lineno}", list_file)
    extensions = config.get("local_extensions") or []
    for entry in config.get("local_videos") or []:
        # Files listed one by one form one list, like urls; each folder is a list of its own.
        group = entry if Path(root, entry).is_dir() else "local_videos"
        for path in _local_files(entry, root, extensions):
            normalised = normalize_path(path, root)
            collection.add(VideoSource(video_id_for_path(normalised, root), "local", normalised, entry, group))
    _add_sheet(collection, config.get("video_sheet"), root)
    for query in (config.get("search") or {}).get("queries") or []:
        for i, url in enumerate(cached_search_urls(query, root)):
            _add_url(collection, url, f"search {query!r}[{i}]", f"search:{query}")
    return collection


def _add_sheet(collection: VideoCollection, sheet_path: str | None, root: str) -> None:
    from video_miner.sheet import SheetError, read_sheet

    if not sheet_path:
        return
    try:
        sheet = read_sheet(Path(root, sheet_path))
    except (OSError, SheetError, ValueError) as exc:
        raise ConfigError(f"video_sheet: cannot read {sheet_path!r}: {exc}") from exc
    for row, url in enumerate(sheet["url"], start=2):  # line 1 is the header
        _add_url(collection, url, f"{sheet_path}:{row}", sheet_path)


def search_result_path(query: str) -> str:
    return f"results/search/{query_slug(query)}.json"


def cached_search_urls(query: str, root: str = ".") -> list[str]:
    """The URLs a query found, once its search ran (the result is cached on disk)."""
    path = Path(root, search_result_path(query))
    if not path.exists():
        return []
    return [entry["url"] for entry in json.loads(path.read_text()).get("entries", [])]


def assign_shards(collection: VideoCollection, shard_size: int) -> dict[str, list[str]]:
    """Group videos into shards of ``shard_size``, per input list and in listing order, so
    appending to any list only fills that list's last shard or opens new ones: earlier
    videos never move and their shard jobs stay done. Shard names are path-safe:
    ``<list name>-<hash of the list key>-<number>``."""
    position: dict[str, int] = {}
    shards: dict[str, list[str]] = {}
    for source in collection.videos.values():
        n = position.get(source.group, 0)
        position[source.group] = n + 1
        label = safe_name(Path(source.group).name, 24).replace(".", "_")
        tag = hashlib.sha256(source.group.encode()).hexdigest()[:6]
        shards.setdefault(f"{label}-{tag}-{n // shard_size:05d}", []).append(source.video_id)
    return shards


def input_files(config: dict, root: str = ".") -> list[str]:
    """The files that list videos (URL lists, the video sheet when it exists): inputs of
    the jobs that read where each video was listed."""
    files = list(config.get("url_files") or [])
    sheet = config.get("video_sheet")
    if sheet and Path(root, sheet).is_file():
        files.append(sheet)
    return files
