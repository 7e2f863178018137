"""Configuration checks with messages that name the key and what it expects.

``snakemake.utils.validate`` stops at the first error and prints the whole schema; this
reports every problem at once, one line each, with a suggestion for a mistyped key. The
Snakefile runs it before ``validate`` (which then fills the defaults).
"""

from __future__ import annotations

import difflib
import os

import jsonschema
import yaml


class ConfigValidationError(ValueError):
    pass


def _key_path(path) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[") or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unknown:
            hint = difflib.get_close_matches(key, allowed, n=1)
            parts.append(f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        prefix = "" if where == "(top level)" else f"{where}: "
        return f"{prefix}{'; '.join(parts)}; allowed keys: {', '.join(allowed)}"
    expected = error.schema.get("description")
    return f"{where}: {error.message}" + (f" (expected: {expected})" if expected else "")


def _cross_key_problems(config: dict) -> list[str]:
    """Rules a JSON schema cannot express."""
    section = config.get("filter") or {}
    classes = set(section.get("classes") or [])
    return [f"filter.class_thresholds: {name!r} is not one of filter.classes"
            for name in section.get("class_thresholds") or {} if name not in classes]


def check_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Raise :class:`ConfigValidationError` listing every problem in ``config``."""
    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors] or _cross_key_problems(config)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigValidationError(f"Invalid configuration ({len(problems)} problem(s)):\n{lines}")
