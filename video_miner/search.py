"""YouTube keyword search through yt-dlp (flat extraction: no video is downloaded),
with duration filters and the download section's cookies, proxy and rate limit."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable

from video_miner.defaults import section_defaults
from video_miner.download import DownloadOptions, _YtdlpLogger
from video_miner.fsutil import write_json_atomic

log = logging.getLogger(__name__)


_DEFAULTS = section_defaults("search")


@dataclass(frozen=True)
class SearchOptions:
    max_results: int = _DEFAULTS["max_results"]
    min_duration_s: float | None = _DEFAULTS["min_duration_s"]
    max_duration_s: float | None = _DEFAULTS["max_duration_s"]


def search_params(download: DownloadOptions) -> dict:
    params = {
        "extract_flat": "in_playlist",
        "skip_download": True,
        "quiet": True,
        "noprogress": True,
        "logger": _YtdlpLogger(),
        "socket_timeout": download.socket_timeout_s,
        "retries": download.retries,
    }
    optional = {"cookiefile": download.cookies_file, "proxy": download.proxy,
                "sleep_interval_requests": download.sleep_interval_s or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def entry_url(entry: dict) -> str | None:
    """A watch URL for a flat search entry (yt-dlp gives ``url``, sometimes only ``id``)."""
    url = entry.get("url") or entry.get("webpage_url")
    if url and url.startswith(("http://", "https://")):
        return url
    if entry.get("id"):
        return f"https://www.youtube.com/watch?v={entry['id']}"
    return None


def within(duration, options: SearchOptions) -> bool:
    """Unknown durations pass: flat results omit them for some videos (live, premieres)."""
    if duration is None:
        return True
    if options.min_duration_s is not None and duration < options.min_duration_s:
        return False
    return options.max_duration_s is None or duration <= options.max_duration_s


def search_youtube(query: str, options: SearchOptions, download: DownloadOptions,
                   ydl_factory: Callable | None = None) -> dict:
    """Search and return ``{"query", "entries": [...], "filtered_out", ...}``; entries
    carry url, title, channel and duration_s, in result order."""
    if ydl_factory is None:
        from yt_dlp import YoutubeDL as ydl_factory
    with ydl_factory(search_params(download)) as ydl:
        info = ydl.extract_info(f"ytsearch{options.max_results}:{query}", download=False)
    entries, filtered_out = [], 0
    for entry in (info or {}).get("entries") or []:
        url = entry_url(entry or {})
        if not url:
            continue
        duration = entry.get("duration")
        if not within(duration, options):
            filtered_out += 1
            continue
        entries.append({
            "url": url,
            "title": entry.get("title"),
            "channel": entry.get("channel") or entry.get("uploader"),
            "duration_s": duration,
        })
    log.info("search %r: %d results kept, %d outside the duration range", query, len(entries), filtered_out)
    return {
        "query": query,
        "max_results": options.max_results,
        "min_duration_s": options.min_duration_s,
        "max_duration_s": options.max_duration_s,
        "searched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "entries": entries,
        "filtered_out": filtered_out,
    }


def run_search(query: str, options: SearchOptions, download: DownloadOptions, out_path: str,
               ydl_factory: Callable | None = None) -> dict:
    """The search rule's work: a failed search is recorded (status, reason) rather than
    raised, so the rest of the run goes on with its other inputs."""
    try:
        result = {"status": "ok", **search_youtube(query, options, download, ydl_factory)}
    except Exception as exc:  # yt-dlp raises DownloadError and others; the reason is what matters
        log.error("search %r failed: %s", query, exc)
        result = {"status": "failed", "query": query, "reason": str(exc).removeprefix("ERROR: ").strip(),
                  "entries": [], "filtered_out": 0}
    write_json_atomic(out_path, result)
    return result
