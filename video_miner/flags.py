"""Command-line flags as configuration: ``video-miner run -i ./videos -k "glass door"``
without a YAML file.

The flags become a config dict layered over the ``-c`` files, written into the working
directory (``config/flags.yaml``, read by Snakemake as one more ``--configfile``) and so
recorded in ``results/run_config.yaml`` with the rest. A value the schema rejects is
reported under the flag's name, not the config key's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from video_miner.stages import STAGES

# Where the flags' settings are written in the working directory.
FLAGS_FILE = Path("config", "flags.yaml")
# How ``--class`` becomes a filter prompt.
PROMPT_TEMPLATE = "a photo of a {}"

# flag -> config key path, for the flags that set one key as given.
SCALAR_FLAGS: dict[str, tuple[str, ...]] = {
    "--detector": ("detection", "backend"),
    "--filter-model": ("filter", "model"),
    "--dedup-model": ("dedup", "model"),
    "--sampling": ("extract", "strategy"),
    "--interval": ("extract", "every_n_frames"),
    "--every-seconds": ("extract", "every_seconds"),
    "--filter-threshold": ("filter", "threshold"),
    "--dedup-threshold": ("dedup", "threshold"),
    "--detection-threshold": ("detection", "threshold"),
    "--batch-size": ("models", "batch_size"),
    "--device": ("models", "device"),
    "--limit": ("max_videos",),
}
# Keys set by the flags that build them (inputs, classes, stages), for error messages.
DERIVED_KEYS: dict[tuple[str, ...], str] = {
    ("urls",): "--url",
    ("url_files",): "--url-file",
    ("local_videos",): "--input",
    ("local_images",): "--input",
    ("filter", "classes"): "--class/--filter-prompt",
    ("detection", "classes"): "--class/--detect-class",
}


def _set(config: dict, path: tuple[str, ...], value: Any) -> None:
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def classify_inputs(paths: Iterable[str], video_extensions: Iterable[str], image_extensions: Iterable[str],
                    root: str | os.PathLike = ".") -> tuple[dict[str, list[str]], list[str]]:
    """``--input`` entries as config lists: a file is a video; a folder is scanned for
    videos (``local_videos``) and for images (``local_images``), and may hold both.
    Returns the lists and the problems (an entry that is neither), one line each."""
    from video_miner.images import image_folders

    video_exts = {e.lower() for e in video_extensions}
    lists: dict[str, list[str]] = {"local_videos": [], "local_images": []}
    problems = []
    for entry in paths:
        path = Path(root, entry)
        if path.is_file():
            lists["local_videos"].append(entry)
        elif path.is_dir():
            # Hidden folders are no input (a stage command's work folder in its output holds videos).
            has_videos = any(p.suffix.lower() in video_exts and p.is_file() for p in path.rglob("*")
                             if not any(part.startswith(".") for part in p.relative_to(path).parts))
            has_images = bool(image_folders(path, image_extensions))
            if has_videos:
                lists["local_videos"].append(entry)
            if has_images:
                lists["local_images"].append(entry)
            if not (has_videos or has_images):
                problems.append(f"--input {entry}: no videos ({', '.join(sorted(video_exts))}) and no images "
                                f"({', '.join(sorted(image_extensions))}) in the folder")
        else:
            problems.append(f"--input {entry}: no such file or folder")
    return {k: v for k, v in lists.items() if v}, problems


def stage_switches(names: Iterable[str]) -> dict:
    """``--stages``: the config that turns on exactly the named stages (those that can be
    switched; download, probe and extraction always run) and every other stage off."""
    from video_miner.stages import BY_NAME

    names = list(names)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"--stages: unknown stage(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    config: dict = {}
    for switch in dict.fromkeys(s.switch for s in STAGES if s.switch):
        # embed and dedup share one switch; verify has detection's and a switch of its own
        on = any(s.name in names for s in STAGES if s.switch == switch and s.name != "verify")
        _set(config, (switch, "enabled"), on)
    config["detection"]["verify"] = "verify" in names
    if "verify" in names:
        config["detection"]["enabled"] = True
    return config


def flags_config(values: dict, video_extensions: Iterable[str], image_extensions: Iterable[str],
                 root: str | os.PathLike = ".") -> tuple[dict, list[str]]:
    """The config the flags set (``values``: flag -> value, None or empty when not given)
    and the problems found. Only what a flag sets is in it: the ``-c`` files and the
    defaults fill the rest."""
    config: dict = {}
    problems: list[str] = []
    if values.get("--url"):
        config["urls"] = list(values["--url"])
    if values.get("--url-file"):
        config["url_files"] = list(values["--url-file"])
    if values.get("--input"):
        lists, found = classify_inputs(values["--input"], video_extensions, image_extensions, root)
        config.update(lists)
        problems += found
    if values.get("--stages"):
        names = [n.strip() for n in ",".join(values["--stages"]).split(",") if n.strip()]
        try:
            config.update(stage_switches(names))
        except ValueError as exc:
            problems.append(str(exc))
    classes = list(values.get("--class") or [])
    prompts = list(values.get("--filter-prompt") or []) or [PROMPT_TEMPLATE.format(c) for c in classes]
    detect = list(values.get("--detect-class") or []) or classes
    if prompts:
        _set(config, ("filter", "classes"), prompts)
        if not values.get("--stages"):
            _set(config, ("filter", "enabled"), True)
    if detect:
        _set(config, ("detection", "classes"), detect)
        if not values.get("--stages"):
            _set(config, ("detection", "enabled"), True)
    for flag, path in SCALAR_FLAGS.items():
        if values.get(flag) is not None:
            _set(config, path, values[flag])
    return config, problems


def flag_for(key_path: str) -> str | None:
    """The flag that sets a config key (``filter.threshold`` -> ``--filter-threshold``)."""
    wanted = tuple(key_path.split("."))
    for flag, path in SCALAR_FLAGS.items():
        if path == wanted:
            return flag
    return DERIVED_KEYS.get(wanted)


def name_flags(message: str, config: dict) -> str:
    """A validation message with each problem about a key the flags set named by its flag
    (``filter.threshold: 2 is greater ...`` -> ``--filter-threshold: 2 is greater ...``)."""
    lines = []
    for line in message.splitlines():
        stripped = line.lstrip(" -")
        key = stripped.split(":", 1)[0].split("[", 1)[0]
        flag = flag_for(key) if _sets(config, key) else None
        lines.append(line.replace(key, f"{flag} ({key})", 1) if flag else line)
    return "\n".join(lines)


def _sets(config: dict, key_path: str) -> bool:
    node: Any = config
    for key in key_path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True
