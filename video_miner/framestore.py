"""Where extracted frames live, and the one reader every later stage opens them through.

``extract.storage: files`` keeps one image file per frame; a table's ``path`` is that
file. ``extract.storage: tar`` packs a shard's frames into WebDataset-style tar files
(``results/extract/<shard>/000000.tar``, ``000001.tar``, ... each up to a size), written
sequentially and renamed into place only when complete, so a killed job never leaves a
half tar that passes for whole. A packed frame's ``path`` is ``<tar>#<member>``, e.g.
``results/extract/s-0001/000000.tar#vid/00000030.jpg``: ``Path(path).name`` and
``.suffix`` are the member's, as for a loose frame. Next to each tar,
``<tar>.index.json`` maps every member to its data's offset and size, so reading a frame
is one seek and one read (a tar without its index is scanned once instead).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from video_miner.fsutil import atomic_path, link_or_copy, write_json_atomic

STORAGES = ("files", "tar")
SEPARATOR = "#"
TAR_SUFFIX = ".tar"
INDEX_SUFFIX = ".index.json"
_BLOCK = tarfile.BLOCKSIZE


def is_packed(path: str) -> bool:
    """Whether ``path`` names a member of a tar (``<file>.tar#<member>``)."""
    tar, sep, member = str(path).partition(SEPARATOR)
    return bool(sep and member) and tar.endswith(TAR_SUFFIX)


def split_address(path: str) -> tuple[str, str]:
    tar, _, member = str(path).partition(SEPARATOR)
    return tar, member


def address(tar: str | os.PathLike, member: str) -> str:
    return f"{Path(tar).as_posix()}{SEPARATOR}{member}"


class TarPacker:
    """Writes members into ``out_dir/000000.tar``, ``000001.tar``, ... in order, starting
    a new tar once one holds ``max_bytes`` (a frame never straddles two). Each tar (and
    its index) appears only when closed complete; ``close`` must be called (or use it as
    a context manager: an exception discards the tar in progress)."""

    def __init__(self, out_dir: str | os.PathLike, max_bytes: int, name: str | None = None, index: bool = True):
        self.out_dir = Path(out_dir)
        self.max_bytes = max(1, int(max_bytes))
        self.name = name  # one tar of this name, never split (a per-video cache file)
        self.write_index = index
        self.tars: list[Path] = []
        self._number = 0
        self._tmp = None
        self._tar: tarfile.TarFile | None = None
        self._index: dict[str, list[int]] = {}

    def __enter__(self) -> "TarPacker":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

    def _path(self) -> Path:
        return self.out_dir / (self.name or f"{self._number:06d}{TAR_SUFFIX}")

    def _open(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name, renamed when complete (see fsutil.atomic_path).
        self._tmp = atomic_path(self._path(), suffix=TAR_SUFFIX)
        self._tar = tarfile.open(self._tmp.__enter__(), "w", format=tarfile.PAX_FORMAT)
        self._index = {}

    def add(self, member: str, data: bytes) -> str:
        """Append ``data`` as ``member``; returns the frame's address."""
        if self._tar is None:
            self._open()
        elif self.name is None and self._tar.offset >= self.max_bytes:
            self._finish()
            self._number += 1
            self._open()
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mtime = 0  # the same frames give the same bytes
        info.mode = 0o644
        self._tar.addfile(info, io.BytesIO(data))
        # addfile leaves the offset past the data's padded blocks: the data starts there.
        padded = -(-len(data) // _BLOCK) * _BLOCK
        self._index[member] = [self._tar.offset - padded, len(data)]
        return address(self._path(), member)

    def _finish(self) -> None:
        path = self._path()
        self._tar.close()
        # The index first: a tar that exists always has its index (a crash between the two
        # leaves an index without a tar, which nothing reads).
        if self.write_index:
            write_json_atomic(Path(f"{path}{INDEX_SUFFIX}"), self._index)
        self._tmp.__exit__(None, None, None)
        self.tars.append(path)
        self._tar = self._tmp = None

    def close(self) -> list[Path]:
        if self._tar is not None:
            self._finish()
        return self.tars

    def discard(self) -> None:
        if self._tar is not None:
            self._tar.close()
            try:  # atomic_path removes its temporary file and re-raises what it is given
                self._tmp.__exit__(_Discarded, _Discarded(), None)
            except _Discarded:
                pass
            self._tar = self._tmp = None


class _Discarded(Exception):
    pass


def _scan(tar: str) -> dict[str, list[int]]:
    with tarfile.open(tar, "r:") as archive:
        return {m.name: [m.offset_data, m.size] for m in archive if m.isfile()}


@lru_cache(maxsize=64)
def _cached_index(tar: str, stamp: tuple[int, int, int]) -> dict[str, list[int]]:
    try:
        index = json.loads(Path(f"{tar}{INDEX_SUFFIX}").read_text())
        if isinstance(index, dict):
            return index
    except (OSError, ValueError):
        pass
    return _scan(tar)


def _stamp(tar: str) -> tuple[int, int, int]:
    info = os.stat(tar)
    return info.st_ino, info.st_size, info.st_mtime_ns


def tar_index(tar: str | os.PathLike) -> dict[str, list[int]]:
    """Member -> [data offset, size] of a tar (its index file, else a scan); cached per
    tar and its inode, size and time, so a rewritten tar is read anew."""
    tar = os.fspath(tar)
    return _cached_index(tar, _stamp(tar))


class _Handle:
    """An open tar kept for reads (``os.pread`` needs no seek and is thread-safe);
    closed when the cache drops it."""

    def __init__(self, tar: str):
        self.fd = os.open(tar, os.O_RDONLY)

    def __del__(self):
        os.close(self.fd)


@lru_cache(maxsize=16)
def _handle(tar: str, stamp: tuple[int, int, int]) -> _Handle:
    return _Handle(tar)


def read_bytes(path: str | os.PathLike) -> bytes:
    """A frame's encoded bytes, loose or packed. Raises ``OSError`` (a missing file or
    member, a truncated tar) or ``ValueError`` (a broken tar) with what is wrong."""
    path = os.fspath(path)
    if not is_packed(path):
        with open(path, "rb") as fh:
            return fh.read()
    tar, member = split_address(path)
    stamp = _stamp(tar)
    try:
        index = _cached_index(tar, stamp)
    except tarfile.TarError as exc:
        raise ValueError(f"broken tar {tar}: {exc}") from exc
    if member not in index:
        raise FileNotFoundError(f"no member {member!r} in {tar}")
    offset, size = index[member]
    data = os.pread(_handle(tar, stamp).fd, size, offset)
    if len(data) != size:
        raise OSError(f"member {member!r} of {tar} is truncated ({len(data)} of {size} bytes)")
    return data


def exists(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    if not is_packed(path):
        return Path(path).is_file()
    tar, member = split_address(path)
    try:
        return member in tar_index(tar)
    except (OSError, tarfile.TarError):
        return False


@contextmanager
def open_image(path: str | os.PathLike) -> Iterator:
    """A PIL image of the frame (``with open_image(p) as image``)."""
    from PIL import Image

    path = os.fspath(path)
    source = io.BytesIO(read_bytes(path)) if is_packed(path) else path
    with Image.open(source) as image:
        yield image


def copy_to(path: str | os.PathLike, target: str | os.PathLike) -> None:
    """The frame's file at ``target`` (folders made): a hard link or copy of a loose
    frame, the member's bytes of a packed one."""
    path = os.fspath(path)
    if not is_packed(path):
        link_or_copy(path, target)
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(read_bytes(path))


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Append ``data`` as ``name`` with a fixed time, mode and owner: the same members
    give the same tar bytes (the WebDataset exports)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "video-miner", "video-miner"
    tar.addfile(info, io.BytesIO(data))


def tar_files(folder: str | os.PathLike) -> list[Path]:
    """A packed shard folder's tars, in order."""
    return sorted(Path(folder).glob(f"*{TAR_SUFFIX}"))
