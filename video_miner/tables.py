"""Parquet tables with a JSON record in the schema metadata, written atomically."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from video_miner.fsutil import atomic_path

META_KEY = b"video_miner"


def write_parquet(path: str | os.PathLike, table: pa.Table, metadata: dict) -> None:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(metadata, sort_keys=True).encode()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def read_metadata(path: str | os.PathLike) -> dict:
    return json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))
