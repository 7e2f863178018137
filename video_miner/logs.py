"""Logging set-up for rule scripts: everything, yt-dlp and warnings included, goes to the
rule's log file."""

from __future__ import annotations

import logging
import os
import sys


# How an exception that ends a job is logged (:func:`job_error` finds it again).
JOB_FAILED = "CRITICAL video_miner.job: job failed: "


def log_to_file(path: str | None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")] if path else []
    handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind, value, traceback) -> None:
    """The exception that ends a job, into its log too: Snakemake shows a script's stderr
    only on its own console, and the run's summary quotes the log (:func:`job_error`)."""
    first = str(value).strip().splitlines()[0] if str(value).strip() else ""
    logging.getLogger("video_miner.job").critical("job failed: %s%s", kind.__name__, f": {first}" if first else "",
                                                  exc_info=(kind, value, traceback))


def job_error(path: str | os.PathLike, tail_bytes: int = 256 * 1024) -> str | None:
    """The error that ended a job, from the end of its log (one line, as
    :func:`log_to_file` wrote it), or None when the log does not say."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - tail_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = [line.split(JOB_FAILED, 1)[1] for line in text.splitlines() if JOB_FAILED in line]
    return found[-1][:300] if found else None


class Progress:
    """Logs ``done/total`` and the rate at most every ``every_s`` seconds, so a long
    job's log shows it is alive and how fast it goes."""

    def __init__(self, what: str, total: int, every_s: float = 30.0, logger: logging.Logger | None = None):
        import time

        self._clock = time.monotonic
        self.what, self.total, self.every_s = what, total, every_s
        self.done = 0
        self.started = self.last = self._clock()
        self.log = logger or logging.getLogger("video_miner.progress")

    def update(self, count: int = 1) -> None:
        self.done += count
        now = self._clock()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.log.info("%s: %d/%d (%.1f/s, about %.0f s left)", self.what, self.done, self.total, rate,
                          (self.total - self.done) / max(rate, 1e-9))
