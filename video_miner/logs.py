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
