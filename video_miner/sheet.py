"""The video sheet: a TSV registry of videos (one row each) that searches append to
and the workflow reads with its other inputs. Status is never stored here: it is
derived from the result files (``video_miner.registry``), so it cannot go stale."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from video_miner.fsutil import write_tsv
from video_miner.ids import InvalidURL, video_id_for_url

SHEET_COLUMNS = ["video_id", "url", "title", "channel", "duration_s", "source", "added"]


class SheetError(ValueError):
    pass


def read_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """The sheet's rows in file order; an absent file is an empty sheet."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SHEET_COLUMNS})
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    missing = [c for c in ("video_id", "url") if c not in sheet.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {missing}; expected {SHEET_COLUMNS}")
    for column in SHEET_COLUMNS:
        if column not in sheet.columns:
            sheet[column] = ""
    return sheet[SHEET_COLUMNS]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise writers of one sheet (two searches at once must not lose rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def append_to_sheet(path: str | os.PathLike, entries: Iterable[dict], source: str,
                    today: dt.date | None = None) -> list[dict]:
    """Add entries (url, title, channel, duration_s) whose video is not in the sheet yet;
    returns the rows added. Duplicates within ``entries`` collapse to the first."""
    path = Path(path)
    added_on = (today or dt.date.today()).isoformat()
    with locked(path):
        sheet = read_sheet(path)
        known = set(sheet["video_id"])
        rows = []
        for entry in entries:
            try:
                video_id = video_id_for_url(entry["url"])
            except InvalidURL:
                continue
            if video_id in known:
                continue
            known.add(video_id)
            duration = entry.get("duration_s")
            rows.append({
                "video_id": video_id,
                "url": entry["url"],
                "title": entry.get("title") or "",
                "channel": entry.get("channel") or "",
                "duration_s": "" if duration is None else f"{float(duration):g}",
                "source": source,
                "added": added_on,
            })
        if rows:
            # Titles may hold tabs and newlines: written escaped, the sheet stays one row per video.
            write_tsv(path, pd.concat([sheet, pd.DataFrame(rows, columns=SHEET_COLUMNS)], ignore_index=True))
    return rows
