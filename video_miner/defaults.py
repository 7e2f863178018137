"""Every configurable default lives in ``config/schema.yaml``; this module reads them
so library dataclasses take their defaults from the same place as the workflow."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def section_defaults(*keys: str) -> dict[str, Any]:
    """The defaults of one config section, e.g. ``section_defaults("extract")`` or
    ``section_defaults("detection", "opencv")``."""
    node = _schema()
    for key in keys:
        node = node["properties"][key]
    return {name: spec["default"] for name, spec in node.get("properties", {}).items() if "default" in spec}


def default(*keys: str) -> Any:
    """One default, e.g. ``default("shard_size")``."""
    node = _schema()
    for key in keys:
        node = node["properties"][key]
    return node["default"]


def upload_target_defaults() -> dict[str, Any]:
    """The defaults of an upload target given as an object (the second form under ``upload``)."""
    target = _schema()["properties"]["upload"]["additionalProperties"]["oneOf"][1]
    return {name: spec["default"] for name, spec in target["properties"].items() if "default" in spec}
