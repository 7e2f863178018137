"""Where every exported item came from, the run that made it, and takedowns.

**Provenance.** Each exported frame and clip carries its video's ``source`` (the URL or
path it came from), ``channel``, ``uploader``, ``upload_date`` and ``license`` as the
site gave them (yt-dlp's info dict; empty for local files and archives, never made up)
and the ``run_id``.

**Run id.** A hash of the run's configuration (defaults filled, secrets redacted: what
``results/run_config.yaml`` records), not a time: the same config is the same run id, so
rerunning a finished run reruns no export; a changed config is a new id, and the exports
(cheap: links and small tables) are rewritten so every item names the config that made
it. The manifest holds that config, so anyone can recompute the id.

**Takedowns.** ``takedown`` (and ``takedown_file``, one entry a line) lists video ids,
URLs (matched however they are written: normalised as the inputs are, YouTube links by
their video id) or channel/uploader names. The split stage and the clip export drop those
videos' items; every frame export reads the split table, so a takedown reruns the exports
only, never a download or an extraction.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from video_miner.ids import InvalidURL, is_remote, normalize_url, video_id_for_url

# The download table's columns that describe where a video came from, and the names the
# exports give them.
PROVENANCE_COLUMNS = {
    "location": "source",
    "channel": "channel",
    "uploader": "uploader",
    "upload_date": "upload_date",
    "license": "license",
}
PROVENANCE_FIELDS = (*PROVENANCE_COLUMNS.values(), "run_id")


# Keys that decide how a run goes, never what it makes: left out of the run id and the
# manifests' config, so changing them (a new upload target, a higher time limit, more
# download workers) reruns no export and re-uploads nothing, and packed and loose frames,
# or two shard sizes, give the same exports.
OPERATIONAL_KEYS = (("upload",), ("limits",), ("download", "workers"), ("shard_size",), ("extract", "storage"),
                    ("extract", "tar_mb"))


def result_config(config: dict) -> dict:
    """``config`` (secrets redacted) without its :data:`OPERATIONAL_KEYS`."""
    from video_miner.registry import redacted

    out = json.loads(json.dumps(redacted(config), default=str))
    for *parents, key in OPERATIONAL_KEYS:
        section = out
        for name in parents:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(key, None)
    return out


def run_id(config: dict) -> str:
    """A short hash of what the run's configuration makes (:func:`result_config`),
    stable across runs."""
    text = json.dumps(result_config(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value) or None


def video_provenance(downloads: pd.DataFrame, run: str) -> dict[str, dict]:
    """Each video's provenance fields (``downloads``: download table rows; columns a table
    written by an older version lacks are empty), by video id."""
    rows = downloads.reindex(columns=["video_id", *PROVENANCE_COLUMNS])
    out = {}
    for row in rows.to_dict("records"):
        out[row["video_id"]] = {name: _text(row[column]) for column, name in PROVENANCE_COLUMNS.items()}
        out[row["video_id"]]["run_id"] = run
    return out


# --- takedowns ------------------------------------------------------------------------


def read_takedown_file(path: str | os.PathLike) -> list[str]:
    """A takedown file's entries: one a line; blank lines and ``#`` comment lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _url_keys(url: str) -> set[str]:
    """The forms a URL matches by: its normalised form and the video id the inputs give it."""
    try:
        return {normalize_url(url), video_id_for_url(url)}
    except InvalidURL:
        return {url.strip()}


@dataclass(frozen=True)
class Takedown:
    keys: frozenset  # normalised URLs and video ids
    names: frozenset  # channel/uploader names and ids, case-folded
    listed: tuple = ()  # (key, the entry it came from): a reason names the entry as listed

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> "Takedown":
        keys, names, listed = set(), set(), {}
        for entry in entries:
            entry = str(entry).strip()
            if not entry:
                continue
            if is_remote(entry):
                for key in _url_keys(entry):
                    listed.setdefault(key, f"URL {entry}")
                keys |= _url_keys(entry)
            else:
                listed.setdefault(entry, f"video id {entry}")
                keys.add(entry)
                names.add(entry.casefold())
        return cls(frozenset(keys), frozenset(names), tuple(listed.items()))

    def __bool__(self) -> bool:
        return bool(self.keys or self.names)

    def reason(self, video_id: str, urls: Sequence, people: Sequence) -> str | None:
        """Why the video is taken down (the entry it matched, as listed), or None."""
        listed = dict(self.listed)
        if video_id in self.keys:
            return f"takedown: {listed.get(video_id, f'video id {video_id}')}"
        for url in urls:
            matched = _url_keys(url) & self.keys if isinstance(url, str) and is_remote(url) else set()
            if matched:
                return f"takedown: {listed.get(min(matched), f'URL {url}')}"
        for name in people:
            if isinstance(name, str) and name.strip() and name.strip().casefold() in self.names:
                return f"takedown: channel {name.strip()}"
        return None


def load_takedown(entries: Iterable[str], files: Iterable[str | os.PathLike] = ()) -> Takedown:
    listed = [*entries]
    for path in files:
        listed += read_takedown_file(path)
    return Takedown.from_entries(listed)


def taken_down(takedown: Takedown, downloads: pd.DataFrame) -> dict[str, str]:
    """The videos of ``downloads`` (download table rows) the takedown names, with why.
    An archive member also goes when the video it was cut from is named."""
    if not takedown or downloads.empty:
        return {}
    rows = downloads.reindex(columns=["video_id", "location", "webpage_url", "channel", "uploader",
                                      "source_video_id"])
    removed = {}
    for row in rows.to_dict("records"):
        ids = [row["video_id"]] + ([row["source_video_id"]] if _text(row["source_video_id"]) else [])
        for video_id in ids:
            why = takedown.reason(video_id, [row["location"], row["webpage_url"]], [row["channel"], row["uploader"]])
            if why:
                removed[row["video_id"]] = why
                break
    return removed
