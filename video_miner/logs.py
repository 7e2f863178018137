"""Logging set-up for rule scripts: everything, yt-dlp and warnings included, goes to the
rule's log file."""

from __future__ import annotations

import logging
import sys


def log_to_file(path: str | None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")] if path else []
    handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


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
