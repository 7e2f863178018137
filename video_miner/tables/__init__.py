"""The table contract: every stage writes ``results/<stage>/{shard}.parquet`` with its
level's key columns, ``kept`` (bool), ``reason`` (empty when kept) and its own columns,
and reads only the kept rows of the stage before it.

One module per level owns its keys and schema (:mod:`.video`, :mod:`.frame`,
:mod:`.clip`); this one holds what they share: atomic writes with a JSON record in the
parquet metadata, the contract check, and the kept-rows reader.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from video_miner.fsutil import atomic_path
from video_miner.storage import PATH_COLUMNS, logical, staged

META_KEY = b"video_miner"
CONTRACT_FIELDS = [pa.field("kept", pa.bool_(), nullable=False), pa.field("reason", pa.string(), nullable=False)]


def write_parquet(path: str | os.PathLike, table: pa.Table, metadata: dict) -> None:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(metadata, sort_keys=True).encode()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def read_metadata(path: str | os.PathLike) -> dict:
    return json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))


class ContractError(ValueError):
    """A stage table without its level's keys, ``kept`` or ``reason``."""


@dataclass(frozen=True)
class Level:
    """One level of the contract: its key columns and the columns every table of it has."""

    name: str
    keys: tuple[str, ...]
    fields: tuple[pa.Field, ...]  # key and shared columns, in order, before ``kept`` and ``reason``

    def schema(self, *extra: pa.Field) -> pa.Schema:
        """The schema of a stage table at this level with the stage's own columns."""
        return pa.schema([*self.fields, *CONTRACT_FIELDS, *extra])

    def table(self, rows: pd.DataFrame | Sequence[dict], *extra: pa.Field) -> pa.Table:
        """Rows (a frame or records) as a table of this level; missing ``reason`` is ''."""
        schema = self.schema(*extra)
        paths = [c for c in PATH_COLUMNS if c in schema.names]
        if isinstance(rows, pd.DataFrame):
            if rows.empty:  # no rows: pandas cannot tell the type of an empty list column
                return schema.empty_table()
            frame = rows.copy()
            for column in paths:  # workflow files as the workflow names them, staged or not
                frame[column] = frame[column].map(logical)
            if "reason" not in frame:
                frame["reason"] = ""
            frame["reason"] = frame["reason"].fillna("").astype(str)
            return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        records = [{**r, "reason": r.get("reason") or ""} | {c: logical(r[c]) for c in paths if c in r} for r in rows]
        return pa.Table.from_pylist(records, schema=schema)

    def check(self, table: pa.Table) -> None:
        missing = [c for c in (*self.keys, "kept", "reason") if c not in table.column_names]
        if missing:
            raise ContractError(f"a {self.name}-level table needs columns {missing}")

    def write(self, path: str | os.PathLike, table: pa.Table, record: dict) -> None:
        """Write a stage table atomically, its record (counts, seconds, per-video
        outcomes) in the parquet metadata."""
        self.check(table)
        write_parquet(path, table, {"level": self.name, **record})

    def read(self, paths: str | os.PathLike | Sequence[str | os.PathLike], columns: Sequence[str] | None = None,
             kept_only: bool = False, videos: Sequence[str] | None = None, shard: str | None = None) -> pd.DataFrame:
        """Rows of one or more tables of this level in key order; only the kept ones with
        ``kept_only``, only those of ``videos`` when given; of a run-wide table (one with a
        ``shard`` column), only the rows of ``shard``, filtered while reading."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        wanted = None if columns is None else list(dict.fromkeys([*self.keys, *columns, "kept"]))

        def rows_of_shard(path):
            return [("shard", "==", shard)] if shard is not None and "shard" in pq.read_schema(path).names else None

        tables = [pq.read_table(p, columns=wanted, filters=rows_of_shard(p)) for p in paths]
        if tables:
            frame = pa.concat_tables(tables, promote_options="default").to_pandas()
        else:
            frame = pd.DataFrame(columns=wanted or [*self.keys, "kept", "reason"])
        for column in PATH_COLUMNS:  # where this job finds them (their staged copies on object storage)
            if column in frame:
                frame[column] = frame[column].map(staged)
        if kept_only:
            frame = frame[frame["kept"].astype(bool)]
        if videos is not None:
            frame = frame[frame["video_id"].isin(list(videos))]
        return frame.sort_values(list(self.keys), kind="stable").reset_index(drop=True)

    def read_kept(self, paths, columns: Sequence[str] | None = None, videos: Sequence[str] | None = None,
                  shard: str | None = None) -> pd.DataFrame:
        """What the next stage works on: the kept rows, without ``kept`` and ``reason``."""
        frame = self.read(paths, columns, kept_only=True, videos=videos, shard=shard)
        return frame.drop(columns=[c for c in ("kept", "reason") if c in frame]).reset_index(drop=True)


def video_outcomes(path: str | os.PathLike) -> dict[str, dict]:
    """Per-video outcomes a stage recorded (``{video_id: {"ok": bool, "reason": ..., ...}}``):
    how a frame- or clip-level stage says a whole video failed in it."""
    return read_metadata(path).get("video_outcomes", {})
