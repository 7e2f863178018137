"""Atomic file writes, path-safe names and text safe to print.

Every file the library writes goes through here: a crash (even SIGKILL) leaves either
the previous file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import pandas as pd

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LEN = 100
# mkstemp/mkdtemp create private files (0600/0700); results get the permissions the
# user's umask gives any new file, so a team can read a shared dataset.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    ``suffix`` keeps the extension for writers that pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# C0 and C1 controls (newline, tab, ESC, CSI ...), Unicode line breaks, and the lone
# surrogates that stand for undecodable bytes in file names (they cannot be written as UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """Text from outside (names, titles, reasons, URLs) for one TSV field or terminal
    line: control characters become escapes (``\\n``, ``\\t``, ``\\x1b``), so a row
    stays one line and no terminal escape sequence gets through."""
    return _CONTROL.sub(lambda m: _NAMED_ESCAPES.get(m[0]) or m[0].encode("unicode_escape").decode(), text)


def write_tsv(path: str | os.PathLike, table: pd.DataFrame, integers: Iterable[str] = ()) -> None:
    """``table`` as a TSV file, atomically: text through :func:`printable`, ``integers``
    columns without a decimal point even where values are missing (pandas makes such
    columns float), missing values empty."""
    table = table.astype({column: "Int64" for column in integers})
    for column in table.columns:
        if table[column].dtype.kind == "O":  # object and str columns
            table[column] = table[column].map(lambda v: printable(v) if isinstance(v, str) else v)
    with atomic_path(path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def safe_name(name: str, max_len: int = MAX_NAME_LEN) -> str:
    """A file-name component derived from untrusted text (titles, ids).

    Path separators, ``..``, NUL and anything outside ``[A-Za-z0-9._-]`` become ``_``;
    leading dots and dashes are dropped so the result is never hidden, relative or an
    option; long names are cut. Never returns an empty string.
    """
    cleaned = _UNSAFE_CHARS.sub("_", name).lstrip(".-")
    cleaned = cleaned.replace("..", "_")[:max_len]
    return cleaned or "_"


def redact(url: str) -> str:
    """The URL without any ``user:password@`` part, for markers, logs and records."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Put ``source``'s file at ``target`` (folders made): a hard link where the filesystem
    allows one, a copy otherwise (another filesystem, object-storage mounts, links not
    allowed). True when it linked."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copyfile(source, target)
        return False
