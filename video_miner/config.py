"""Configuration checks with messages that name the key and what it expects.

``snakemake.utils.validate`` stops at the first error and prints the whole schema; this
reports every problem at once, one line each, with a suggestion for a mistyped key. The
Snakefile runs it before ``validate`` (which then fills the defaults).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path

import jsonschema
import yaml

from video_miner.sources import input_problems


class ConfigValidationError(ValueError):
    pass


def _key_path(path) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[") or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator in ("oneOf", "anyOf") and isinstance(error.instance, dict):
        # An object given where a string or an object is allowed: what is wrong inside the
        # object, not "not valid under any of the given schemas".
        inside = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
        if inside:
            return _describe(jsonschema.exceptions.best_match(inside))
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
    if error.validator == "not" and expected:  # a value the schema refuses, and why
        return f"{where}: {error.instance!r} is not allowed: {expected}"
    if error.validator == "required":  # say what the missing key must hold
        missing = error.message.split("'")[1] if "'" in error.message else ""
        expected = error.schema.get("properties", {}).get(missing, {}).get("description", expected)
    return f"{where}: {error.message}" + (f" (expected: {expected})" if expected else "")


# Model folders a rule of the workflow builds (the demo's tiny checkpoints).
_BUILT_MODELS = re.compile(r"^(\./)?resources/models/(siglip2|siglip|dinov2|grounding_dino|owlv2|florence2|sam|clip|whisper)/?$")


def _model_problem(key: str, model: str) -> list[str]:
    from video_miner.models import is_local_model

    if not is_local_model(model) or os.path.isdir(model) or _BUILT_MODELS.match(model):
        return []
    return [f"{key}: {model!r} is not an existing folder, nor a Hugging Face id of the form org/name"]


def _cross_key_problems(config: dict) -> list[str]:
    """Rules a JSON schema cannot express."""
    section = config["filter"]
    problems = [f"filter.class_thresholds: {name!r} is not one of filter.classes"
                for name in section["class_thresholds"] if name not in section["classes"]]
    if section["enabled"]:
        problems += _model_problem("filter.model", section["model"])
    dedup = config["dedup"]
    if dedup["enabled"] and dedup["backend"] == "model" and dedup["model"] != "filter":
        problems += _model_problem("dedup.model", dedup["model"])
    detection = config["detection"]
    if detection["enabled"]:
        problems += _detection_problems(detection)
    problems += _box_stage_problems(config)
    problems += _clip_problems(config)
    if config["probe"]["filters"]["require_audio"] and not config["download"]["audio"]:
        problems.append("probe.filters.require_audio: downloads are video-only unless download.audio is true, "
                        "so every downloaded video would be rejected")
    return problems + _text_problems(config) + _split_problems(config)


def _text_problems(config: dict) -> list[str]:
    """Audio needs downloads with audio; local models must exist."""
    problems = []
    if config["audio"]["enabled"]:
        if not config["download"]["audio"]:
            problems.append("audio.enabled: downloads are video-only unless download.audio is true, so there "
                            "would be nothing to hear")
        problems += _model_problem("audio.model", config["audio"]["model"])
    captions = config["captions"]
    if captions["enabled"] and captions["backend"] == "florence2":
        problems += _model_problem("captions.florence2.model", captions["florence2"]["model"])
    return problems


def _split_problems(config: dict) -> list[str]:
    from video_miner.splits import ratio_problems

    problems = ratio_problems(config["splits"]["ratios"])
    if config["splits"]["max_frames_per_class"] is not None and not config["detection"]["enabled"]:
        problems.append("splits.max_frames_per_class: classes come from the boxes, so it needs detection.enabled "
                        "true (use splits.max_frames_per_video without detection)")
    return problems


def _clip_problems(config: dict) -> list[str]:
    """What needs the clip level on: extraction by scene, cut clips, the clip WebDataset,
    the clip scores and their calibration; and what the aesthetic stage must find."""
    problems = []
    if not config["shots"]["enabled"]:
        if config["extract"]["strategy"] == "scene":
            problems.append("extract.strategy: scene takes frames of each shot, so it needs shots.enabled: true")
        for key in ("cut", "webdataset"):
            if config["clips"][key]:
                problems.append(f"clips.{key}: needs shots.enabled: true (there are no clips without it)")
    if config["clips"]["webdataset"] and not config["clips"]["cut"]:
        problems.append("clips.webdataset: the tars hold each clip's mp4, so it needs clips.cut: true")
    scored = [name for name in ("flash", "ocr", "motion", "aesthetic") if config[name]["enabled"]]
    if not config["shots"]["enabled"]:
        problems += [f"{name}.enabled: scores clips, so it needs shots.enabled: true" for name in scored]
    if config["calibration"]["enabled"] and not scored:
        problems.append("calibration.enabled: scores clips with the enabled score stages, but none of flash, ocr, "
                        "motion, aesthetic is enabled")
    if config["aesthetic"]["enabled"]:
        problems += _aesthetic_problems(config["aesthetic"])
    return problems


def _aesthetic_problems(section: dict) -> list[str]:
    """The CLIP model must be a folder or a hub id, and the LAION head must be found: no
    hub hosts it under the model's id, so a hub model needs ``aesthetic.head``."""
    problems = _model_problem("aesthetic.model", section["model"])
    head = section["head"]
    if head and not os.path.isfile(head):
        problems.append(f"aesthetic.head: {head!r} is not a file (the LAION head's weights, .pth or .safetensors)")
    elif not head and os.path.isdir(section["model"]) and not _BUILT_MODELS.match(section["model"]):
        names = ("aesthetic_head.safetensors", "aesthetic_head.pth")
        if not any(os.path.isfile(os.path.join(section["model"], name)) for name in names):
            problems.append(f"aesthetic.head: no {' or '.join(names)} in {section['model']!r}; set aesthetic.head to "
                            "the LAION head's weights")
    elif not head and not _BUILT_MODELS.match(section["model"]):
        problems.append("aesthetic.head: the LAION aesthetic head is not on the model hub with the CLIP model: "
                        "download sac+logos+ava1-l14-linearMSE.pth from "
                        "https://github.com/christophschuhmann/improved-aesthetic-predictor and set aesthetic.head "
                        "to its path")
    return problems


def _box_stage_problems(config: dict) -> list[str]:
    """What verify and segment need: detection on, a template with one {} for the class,
    checkpoints that exist."""
    from video_miner.stages import verify_enabled

    detection, segment = config["detection"], config["segment"]
    problems = []
    try:
        detection["verify_template"].format("class")
    except (IndexError, KeyError, ValueError):
        problems.append(f"detection.verify_template: {detection['verify_template']!r} must hold {{}} (the class) "
                        "and no other braces")
    if verify_enabled(config) and not config["filter"]["enabled"]:
        problems += _model_problem("filter.model", config["filter"]["model"])
    if segment["enabled"]:
        if not detection["enabled"]:
            problems.append("segment.enabled: masks are drawn for the boxes, so it needs detection.enabled: true")
        problems += _model_problem("segment.model", segment["model"])
    return problems


def _detection_problems(detection: dict) -> list[str]:
    from video_miner.detection import API_BACKENDS, HAAR_CASCADES

    if detection["backend"] in API_BACKENDS:
        return []  # detection.model is the name the API is asked for
    if detection["backend"] != "opencv":
        return _model_problem("detection.model", detection["model"]) if detection["model"] else []
    cascades = {**HAAR_CASCADES, **detection["opencv"]["cascades"]}
    return [f"detection.classes: the opencv backend has no cascade for {name!r}; known: {', '.join(sorted(cascades))} "
            "(or map it to a cascade file in detection.opencv.cascades)"
            for name in detection["classes"] if name.lower() not in cascades]


def check_config(config: dict, schema_path: str | os.PathLike, root: str | os.PathLike = ".") -> None:
    """Raise :class:`ConfigValidationError` listing every problem in ``config``, with the
    input lists and folders that do not exist (relative paths are relative to ``root``)."""
    with open(schema_path, encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors] + input_problems(config, str(root))
    if not errors:
        from snakemake.utils import validate

        filled = copy.deepcopy(config)  # cross-key rules see the defaults too
        validate(filled, str(schema_path), set_default=True)
        problems += _cross_key_problems(filled)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigValidationError(f"Invalid configuration ({len(problems)} problem(s)):\n{lines}")


def _merge(base: dict, override: dict) -> dict:
    """Nested dict update, as Snakemake layers --configfile over configfile."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def read_config_file(path: str | os.PathLike) -> dict:
    """One config file's settings. A YAML syntax error is one line, ``file:line:column:
    problem``, not a parser's traceback (and so is a file that holds no settings)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigValidationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context
        if exc.problem and exc.context and exc.context_mark:  # where the construct it ends began
            problem += f" ({exc.context} at {exc.context_mark.line + 1}:{exc.context_mark.column + 1})"
        raise ConfigValidationError(f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigValidationError(f"{path}:{line}:{column}: {str(exc).splitlines()[0]}") from None
    if config is not None and not isinstance(config, dict):
        raise ConfigValidationError(f"{path}: expected settings (key: value) at the top level, found a "
                                    f"{type(config).__name__}")
    return config or {}


def read_config_files(config_files: list[str | os.PathLike], root: str | os.PathLike = ".") -> dict:
    """The settings a ``snakemake`` run in ``root`` reads, unchecked: ``config/config.yaml``
    there (when present) with each file in ``config_files`` layered on top."""
    config: dict = {}
    for path in [Path(root, "config", "config.yaml"), *map(Path, config_files)]:
        if path == Path(root, "config", "config.yaml") and not path.exists():
            continue
        config = _merge(config, read_config_file(path))
    return config


def load_config(config_files: list[str | os.PathLike], root: str | os.PathLike = ".",
                schema_path: str | os.PathLike | None = None) -> dict:
    """The configuration a ``snakemake`` run in ``root`` would see, checked, with defaults
    filled."""
    return filled_config(read_config_files(config_files, root), root, schema_path)


def filled_config(config: dict, root: str | os.PathLike = ".", schema_path: str | os.PathLike | None = None) -> dict:
    """A copy of ``config`` (every setting, as a run would see them), checked, with
    defaults filled."""
    from snakemake.utils import validate

    schema_path = schema_path or Path(__file__).resolve().parents[1] / "config" / "schema.yaml"
    config = copy.deepcopy(config)
    check_config(config, schema_path, root)
    validate(config, str(schema_path), set_default=True)
    return config
