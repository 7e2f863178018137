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

from video_miner.fsutil import printable, redact, safe_name
from video_miner.ids import InvalidURL, archive_video_id, is_remote, normalize_location, query_slug, normalize_path, normalize_url, video_id_for_path, video_id_for_url, youtube_id


# A comment starts a line or follows white space; a '#' inside a URL is its fragment.
_COMMENT = re.compile(r"(?:^|\s)#")


class ConfigError(ValueError):
    """A configuration problem found before any job runs."""


@dataclass(frozen=True)
class VideoSource:
    video_id: str
    # "url", "local", "images" (a folder of images) or "archive" (a tar archive: one shard,
    # its members its videos)
    kind: str
    location: str  # normalised URL, path relative to the working directory, or an archive's fsspec URL
    origin: str  # where it was listed, e.g. "urls[3]" or "lists/a.txt:12"
    group: str  # the list it belongs to ("urls", a url file, a local_videos entry, an archive)
    csv: str | None = None  # an archive's CSV, describing its members


@dataclass
class VideoCollection:
    videos: dict[str, VideoSource] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)
    duplicates: int = 0
    left_out: int = 0  # listed videos outside a pilot run's sample (max_videos)
    # Each video's place in its list (duplicates not counted): its shard. Kept for the
    # videos of a pilot's sample, so that each stays in the shard the full run gives it.
    positions: dict[str, int] = field(default_factory=dict)
    _listed: dict[str, int] = field(default_factory=dict, repr=False)  # videos per list so far

    def add(self, source: VideoSource) -> None:
        if source.video_id in self.videos:
            self.duplicates += 1
        else:
            self.videos[source.video_id] = source
            self.positions[source.video_id] = self._listed.get(source.group, 0)
            self._listed[source.group] = self.positions[source.video_id] + 1

    def reject(self, text: str, origin: str, reason: str) -> None:
        # Without a URL's user:password part: the summary records the input.
        self.rejected.append({"input": redact(text), "origin": origin, "reason": reason})

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


def _strings(value) -> list[str]:
    """The strings of a list from the config as given (wrong types are the schema's to report)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def input_problems(config: dict, root: str = ".") -> list[str]:
    """Every ``url_files`` and ``local_videos`` entry that names nothing usable, one line
    each, so that all of them are reported at once."""
    from video_miner.defaults import default

    problems = []
    for list_file in [*_strings(config.get("url_files")), *_strings((config.get("archives") or {}).get("lists"))]:
        try:
            open(Path(root, list_file), encoding="utf-8").close()
        except OSError as exc:
            key = "url_files" if list_file in _strings(config.get("url_files")) else "archives.lists"
            problems.append(f"{key}: cannot read {list_file!r}: {exc.strerror or exc}")
    exts = {e.lower() for e in _strings(config.get("local_extensions", default("local_extensions")))}
    for entry in _strings(config.get("local_videos")):
        path = Path(root, entry)
        # A listed video file that does not exist yet may be made by a rule (the demo's are).
        if not (path.is_dir() or path.is_file() or path.suffix.lower() in exts):
            problems.append(f"local_videos: {entry!r} is neither a folder nor a video file ({', '.join(sorted(exts))})")
    return problems + image_folder_problems(config, root)


def image_folder_problems(config: dict, root: str = ".") -> list[str]:
    """Every ``local_images`` entry that is not a folder holding images."""
    from video_miner.defaults import default
    from video_miner.images import image_folders

    exts = _strings(config.get("image_extensions", default("image_extensions")))
    problems = []
    for entry in _strings(config.get("local_images")):
        if not Path(root, entry).is_dir():
            problems.append(f"local_images: {entry!r} is not a folder")
        elif not image_folders(Path(root, entry), exts):
            problems.append(f"local_images: no images ({', '.join(sorted(exts))}) in {entry!r}")
    return problems


def _add_image_folders(collection: VideoCollection, entry: str, root: str, extensions: Iterable[str]) -> None:
    """A ``local_images`` entry: each folder in it (itself included) that holds images is
    one input of kind ``images``, all in one list named after the entry."""
    from video_miner.images import KIND, image_folders

    for folder in image_folders(Path(root, entry), extensions):
        location = normalize_path(os.path.relpath(folder, root), root)
        try:
            location.encode("utf-8")
        except UnicodeEncodeError:
            collection.reject(printable(location), entry, f"folder name is not valid UTF-8: {location!r}")
            continue
        video_id = "images-" + video_id_for_path(location, root).removeprefix("file-")
        collection.add(VideoSource(video_id, KIND, location, entry, entry))


def _unusable(path: Path, location: str) -> str | None:
    """Why a local path cannot be a video, or None: it is a file, or not there yet (a rule
    may make it)."""
    if path.is_file():
        try:
            location.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name: no table or id can hold it
            return f"file name is not valid UTF-8: {location!r}"
        return None
    if path.is_symlink():
        return f"broken symbolic link: {location!r} -> {os.readlink(path)!r}"
    if path.exists():
        return f"not a regular file: {location!r}"
    return None


def _add_local(collection: VideoCollection, entry: str, root: str, extensions: Iterable[str]) -> None:
    """A ``local_videos`` entry: the file, or each file with one of ``extensions`` in the
    folder and below. What cannot be a video (a broken symbolic link, a FIFO, a name that
    is not UTF-8) is a rejected input with its reason, never silently skipped."""
    folder = Path(root, entry)
    if folder.is_dir():  # each folder is a list of its own
        exts = {e.lower() for e in extensions}
        paths = sorted(os.path.relpath(p, root) for p in folder.rglob("*")
                       if p.suffix.lower() in exts and not p.is_dir())
        group = entry
    else:  # files listed one by one form one list, like urls
        paths, group = [entry], "local_videos"
    for path in paths:
        location = normalize_path(path, root)
        reason = _unusable(Path(root, path), location)
        if reason:
            collection.reject(printable(location), entry, reason)
        else:
            collection.add(VideoSource(video_id_for_path(location, root), "local", location, entry, group))


def collect_videos(config: dict, root: str = ".", searches: dict[str, str] | None = None) -> VideoCollection:
    """All videos named by ``urls``, ``url_files``, ``local_videos``, the video sheet,
    ``archives`` (one source per archive) and the cached results of ``search.queries``,
    in that order. ``searches`` maps a query to its result file where the caller got it
    from Snakemake (staged from object storage); by default they are read under ``root``."""
    problems = input_problems(config, root)
    if problems:
        raise ConfigError("\n".join(problems))
    collection = VideoCollection()
    for i, url in enumerate(config.get("urls") or []):
        _add_url(collection, url, f"urls[{i}]", "urls")
    for list_file in config.get("url_files") or []:
        try:
            lines = list(read_url_file(Path(root, list_file)))
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"url_files: cannot read {list_file!r}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        for lineno, url in lines:
            _add_url(collection, url, f"{list_file}:{lineno}", list_file)
    for entry in config.get("local_videos") or []:
        _add_local(collection, entry, root, config.get("local_extensions") or [])
    for entry in config.get("local_images") or []:
        _add_image_folders(collection, entry, root, config.get("image_extensions") or [])
    _add_sheet(collection, config.get("video_sheet"), root)
    _add_archives(collection, config.get("archives") or {}, root)
    for query in (config.get("search") or {}).get("queries") or []:
        result = (searches or {}).get(query) or Path(root, search_result_path(query))
        for i, url in enumerate(search_urls(result)):
            _add_url(collection, url, f"search {query!r}[{i}]", f"search:{query}")
    if config.get("max_videos"):
        sample_videos(collection, config["max_videos"])
    return collection


def sample_rank(video_id: str) -> str:
    """A video's place in the pilot sample: a hash of its id, so the sample depends on
    neither listing order nor the other videos, and a larger sample holds a smaller one."""
    return hashlib.sha256(video_id.encode("utf-8")).hexdigest()


def sample_videos(collection: VideoCollection, limit: int) -> None:
    """Keep the ``limit`` videos with the smallest :func:`sample_rank`, in listing order.
    They keep their places in their lists (``positions``), so each lands in the shard the
    full run gives it and the full run finds its results in that shard's caches (a
    sample regrouped into few shards would scatter over the full run's shards, out of
    reach of the caches)."""
    chosen = set(sorted(collection.videos, key=sample_rank)[:limit])
    collection.left_out = len(collection.videos) - len(chosen)
    collection.videos = {v: s for v, s in collection.videos.items() if v in chosen}


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


def _add_archives(collection: VideoCollection, section: dict, root: str) -> None:
    """Each archive of ``archives.inputs`` and ``archives.lists``: one source, its own
    shard (its group is its location). Its members are read by its download job, never
    here: listing them would mean fetching every archive for a dry run."""

    entries = [(e, f"archives.inputs[{i}]") for i, e in enumerate(section.get("inputs") or [])]
    for list_file in section.get("lists") or []:
        try:
            lines = list(read_url_file(Path(root, list_file)))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"archives.lists: cannot read {list_file!r}: not UTF-8 text") from exc
        entries += [(text, f"{list_file}:{lineno}") for lineno, text in lines]
    for entry, origin in entries:
        path, csv = (entry, None) if isinstance(entry, str) else (entry["path"], entry.get("csv"))
        csv = csv or section.get("csv")
        try:
            location = normalize_location(path, root)
            csv = normalize_location(csv, root) if csv else None
        except ValueError as exc:
            collection.reject(printable(path), origin, str(exc))
            continue
        collection.add(VideoSource(archive_video_id(location), "archive", location, origin, location, csv))


def archive_inputs(collection: VideoCollection, video_ids: Iterable[str]) -> list[str]:
    """The local archives and CSVs of these videos that exist: inputs of their download
    job (a rule may make them; one not there is recorded failed by the job)."""
    paths = []
    for video_id in video_ids:
        source = collection.videos[video_id]
        if source.kind == "archive":
            paths += [p for p in (source.location, source.csv) if p and not is_remote(p) and Path(p).is_file()]
    return list(dict.fromkeys(paths))


def search_result_path(query: str) -> str:
    return f"results/search/{query_slug(query)}.json"


def search_urls(path: str | os.PathLike) -> list[str]:
    """The URLs a query found, once its search ran (its result file exists)."""
    path = Path(path)
    if not path.exists():
        return []
    return [entry["url"] for entry in json.loads(path.read_text()).get("entries", [])]


def assign_shards(collection: VideoCollection, shard_size: int) -> dict[str, list[str]]:
    """Group videos into shards of ``shard_size``, per input list and in listing order, so
    appending to any list only fills that list's last shard or opens new ones: earlier
    videos never move and their shard jobs stay done. A pilot run's videos keep their
    full-run places: its shards are the full run's, holding fewer videos. Shard names are
    path-safe: ``<list name>-<hash of the list key>-<number>``."""
    position: dict[str, int] = {}
    shards: dict[str, list[str]] = {}
    for source in collection.videos.values():
        n = collection.positions.get(source.video_id, position.get(source.group, 0))
        position[source.group] = n + 1
        label = safe_name(Path(source.group).name, 24).replace(".", "_")
        tag = hashlib.sha256(source.group.encode()).hexdigest()[:6]
        shards.setdefault(f"{label}-{tag}-{n // shard_size:05d}", []).append(source.video_id)
    return shards


def input_files(config: dict, root: str = ".") -> list[str]:
    """The files that list videos (URL lists, the video sheet when it exists): inputs of
    the jobs that read where each video was listed."""
    files = [*(config.get("url_files") or []), *((config.get("archives") or {}).get("lists") or [])]
    sheet = config.get("video_sheet")
    if sheet and Path(root, sheet).is_file():
        files.append(sheet)
    return files
