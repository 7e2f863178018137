"""Train/val/test splits by video, so that near-identical frames never sit on both sides.

**Groups.** Copies of one video (video_dedup's ``duplicate_of``) and videos that share a
cross-video duplicate frame (the dedup stage's ``duplicate_of`` frame ids) are linked; a
group is a connected set of linked videos, and a group is always in one split.

**Assignment.** A group's split is a pure function of its *key*, its smallest video id,
and the seed: ``sha256(seed, key)`` read as a number in [0, 1) falls into one of the
intervals that ``ratios`` cut [0, 1) into (train, then val, then test). So the assignment
is deterministic, does not depend on listing order, shards or parallelism, and adding a
video never moves another one unless it links two groups (a merge). A merged group takes
the split of the smaller of the two keys: the group that had it stays put, the other's
videos may move. A new video that links to an existing group is such a merge; the group
stays put when the new id is larger than its key.

Why the smallest id and not video_dedup's canonical copy: every group has one (a group
linked by shared frames has no canonical copy), it needs no metadata, and it changes
only when a smaller id joins, while the canonical copy changes whenever a better copy
arrives (more pixels, longer).

Ratios are met per group in expectation only: few groups, or one giant group, leave
the achieved shares far from the targets; :func:`split_report` says so.

**Caps** (optional, deterministic): ``max_frames_per_video`` keeps frames evenly spaced
in time; ``max_frames_per_class`` keeps at most that many frames showing each class
(frames without boxes count as one more class), frames of the rarest classes first,
then in the order of a hash of the frame id.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.ids import video_of_frame
from video_miner.tables import read_metadata
from video_miner.tables.frame import ANNOTATION_COLUMNS, FRAME, FRAME_COLUMNS, annotation_fields
from video_miner.tables.video import VIDEO

# The split names, in the order their intervals cut [0, 1); the same names everywhere:
# COCO annotations_<split>.json, YOLO images/<split>/, the imagefolder's <split>/ folders
# (the datasets library reads ``val`` as its ``validation`` split).
SPLIT_NAMES = ("train", "val", "test")
# Why a frame the privacy stage could not read is in no export (it would go out unblurred).
UNCHECKED = "privacy: not checked for faces and licence plates (unreadable); left out of the exports"
# Frames without boxes, as a class of their own for max_frames_per_class.
NO_BOXES = "(no boxes)"
_DEFAULTS = section_defaults("splits")


def ratio_problems(ratios: Mapping) -> list[str]:
    """What is wrong with ``splits.ratios`` (an empty list when nothing is)."""
    problems = [f"splits.ratios: unknown split {name!r}; splits are {', '.join(SPLIT_NAMES)}"
                for name in ratios if name not in SPLIT_NAMES]
    values = {name: ratios[name] for name in ratios if name in SPLIT_NAMES}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            problems.append(f"splits.ratios.{name}: {value!r} is not a share between 0 and 1")
    if not problems:
        total = sum(values.values())
        if abs(total - 1) > 1e-6:
            given = ", ".join(f"{k} {v}" for k, v in values.items())
            problems.append(f"splits.ratios: the shares ({given}) sum to {total:g}; they must sum to 1")
    return problems


def full_ratios(ratios: Mapping) -> dict[str, float]:
    """Every split's share, 0 for those left out; raises ValueError when invalid."""
    problems = ratio_problems(ratios)
    if problems:
        raise ValueError("; ".join(problems))
    return {name: float(ratios.get(name, 0)) for name in SPLIT_NAMES}


def active_splits(ratios: Mapping) -> list[str]:
    """The splits with a share above 0: each gets its files (empty ones too)."""
    return [name for name, share in full_ratios(ratios).items() if share > 0]


@dataclass(frozen=True)
class SplitSettings:
    ratios: dict = field(default_factory=lambda: full_ratios(_DEFAULTS["ratios"]))
    seed: int = _DEFAULTS["seed"]
    max_frames_per_video: int | None = _DEFAULTS["max_frames_per_video"]
    max_frames_per_class: int | None = _DEFAULTS["max_frames_per_class"]

    def __post_init__(self):
        object.__setattr__(self, "ratios", full_ratios(self.ratios))

    @classmethod
    def from_config(cls, section: dict) -> "SplitSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


# --- groups and assignment -------------------------------------------------------------


def group_keys(videos: Iterable[str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each video's group key: the smallest id among the videos linked to it, directly or
    through others (videos only named in ``links`` are members too)."""
    parent: dict[str, str] = {}

    def root(v: str) -> str:
        parent.setdefault(v, v)
        top = v
        while parent[top] != top:
            top = parent[top]
        while parent[v] != top:
            parent[v], v = top, parent[v]
        return top

    for video in videos:
        root(video)
    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb:  # the smaller id stays the root: a group's root is its smallest id
            parent[max(ra, rb)] = min(ra, rb)
    return {video: root(video) for video in sorted(parent)}


def hash_unit(seed: int, key: str) -> float:
    """``key`` and ``seed`` as a number in [0, 1), the same on every machine and run."""
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for(key: str, ratios: Mapping, seed: int) -> str:
    """The split of the group with this key."""
    return _splitter(ratios)(hash_unit(seed, key))


def _splitter(ratios: Mapping):
    """A function from a point of [0, 1) to the split whose interval holds it."""
    shares = full_ratios(ratios)
    chosen = [name for name in SPLIT_NAMES if shares[name] > 0]
    uppers = np.cumsum([shares[name] for name in chosen])

    def split(point: float) -> str:
        # past the last upper bound only when the shares sum to a hair under 1
        return chosen[min(int(np.searchsorted(uppers, point, side="right")), len(chosen) - 1)]

    return split


def assign_splits(videos: Iterable[str], links: Iterable[tuple[str, str]], ratios: Mapping,
                  seed: int) -> pd.DataFrame:
    """``video_id``, ``group`` (its key) and ``split`` for every video, in id order."""
    keys = group_keys(videos, links)
    split = _splitter(ratios)
    splits = {key: split(hash_unit(seed, key)) for key in set(keys.values())}
    return pd.DataFrame({"video_id": list(keys), "group": list(keys.values()),
                         "split": [splits[k] for k in keys.values()]}, columns=["video_id", "group", "split"])


def video_splits(video_ids: Iterable[str], assigned: pd.DataFrame | None, ratios: Mapping,
                 seed: int) -> dict[str, str]:
    """The split of each of ``video_ids`` (the clip export's videos): the splits stage's
    (``assigned``: its video table, whose groups link copies and videos sharing frames),
    so a video sits in one split in every export; a video it does not hold (none of its
    frames reached the exports, and video_dedup is off) is a group of its own, placed by
    the same hash."""
    known = dict(zip(assigned["video_id"], assigned["split"])) if assigned is not None else {}
    alone = assign_splits(set(video_ids) - set(known), [], ratios, seed)
    return {**known, **dict(zip(alone["video_id"], alone["split"]))}


def copy_links(videos: pd.DataFrame | None) -> list[tuple[str, str]]:
    """Links from a video table with ``duplicate_of`` (video_dedup's): copy -> canonical."""
    if videos is None or "duplicate_of" not in videos:
        return []
    rows = videos.dropna(subset=["duplicate_of"])
    return [(v, d) for v, d in zip(rows["video_id"], rows["duplicate_of"]) if d]


def frame_links(frames: pd.DataFrame | None) -> list[tuple[str, str]]:
    """Links from a frame table whose ``duplicate_of`` names another frame by id (the
    cross-video dedup table): the two frames' videos, where they differ."""
    if frames is None or "duplicate_of" not in frames:
        return []
    rows = frames.dropna(subset=["duplicate_of"])
    pairs = {(v, video_of_frame(d)) for v, d in zip(rows["video_id"], rows["duplicate_of"]) if d}
    return sorted((a, b) for a, b in pairs if a != b)


# --- caps ------------------------------------------------------------------------------


def cap_per_video(frames: pd.DataFrame, limit: int | None) -> np.ndarray:
    """Which frames stay when each video keeps at most ``limit``: evenly spaced over its
    frames in time order, the first and the last included."""
    keep = np.ones(len(frames), bool)
    if not limit or frames.empty:
        return keep
    for rows in frames.groupby("video_id", sort=False).indices.values():
        if len(rows) <= limit:
            continue
        ordered = rows[np.argsort(frames["frame_index"].to_numpy()[rows], kind="stable")]
        chosen = np.round(np.linspace(0, len(ordered) - 1, limit)).astype(int) if limit > 1 else np.array([0])
        keep[ordered] = False
        keep[ordered[chosen]] = True
    return keep


def frame_classes(frames: pd.DataFrame) -> list[tuple[str, ...]]:
    """The classes each frame shows (sorted, once each); :data:`NO_BOXES` for none."""
    categories = frames["category"] if "category" in frames else [[]] * len(frames)
    return [tuple(sorted({str(c) for c in cats})) or (NO_BOXES,) for cats in categories]


def cap_per_class(frames: pd.DataFrame, limit: int | None, seed: int) -> list[str]:
    """Per frame, empty when it stays, else the class that was full: at most ``limit``
    frames show each class. Frames are taken rarest class first (the frame's rarest
    class, by how many frames show it), then by a hash of the frame id; a frame is taken
    only while every class it shows has room."""
    reasons = [""] * len(frames)
    if not limit or frames.empty:
        return reasons
    classes = frame_classes(frames)
    shown = Counter(c for cs in classes for c in cs)
    ids = frames["frame_id"].tolist()
    order = sorted(range(len(frames)),
                   key=lambda i: (min(shown[c] for c in classes[i]), hash_unit(seed, ids[i]), ids[i]))
    taken: Counter = Counter()
    for i in order:
        full = [c for c in classes[i] if taken[c] >= limit]
        if full:
            reasons[i] = f"over splits.max_frames_per_class ({limit}) for {full[0]!r}"
            continue
        taken.update(classes[i])
    return reasons


# --- the split tables -------------------------------------------------------------------

SPLIT_VIDEO_FIELDS = (pa.field("group", pa.string(), nullable=False), pa.field("split", pa.string(), nullable=False),
                      pa.field("frames", pa.int64(), nullable=False))
SPLIT_FIELD = pa.field("split", pa.string(), nullable=False)


def split_frame_fields(frames: pd.DataFrame) -> list[pa.Field]:
    """The split frame table's own columns: the split, and the boxes (points, masks) when
    there are any."""
    return [SPLIT_FIELD, *annotation_fields(frames.columns)]


def make_splits(frames: pd.DataFrame, copies: pd.DataFrame | None, links: pd.DataFrame | None,
                settings: SplitSettings, removed: Mapping[str, str] | None = None,
                unchecked: Iterable[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``frames``: the final frames (kept rows of the last frame stage, of the kept videos).
    ``copies``: video_dedup's table (``video_id``, ``duplicate_of``), None when off.
    ``links``: the cross-video dedup table (``video_id``, ``duplicate_of`` frame ids),
    None when off. Returns the video table (every video of ``frames`` and ``copies``:
    group, split, frames in the exports; kept when it has frames there), the frame table
    (the final frames with their split; kept false with the reason for those over a cap)
    and the record (the report of :func:`split_report`; ``takedown``: the videos of
    ``removed``, id -> reason, and their frames, which are left out of both tables after the
    assignment, so a takedown never moves another video between splits). ``unchecked``:
    frame ids privacy could not check, kept false (:data:`UNCHECKED`): never exported
    unblurred."""
    columns = [*FRAME_COLUMNS, *(c for c in ANNOTATION_COLUMNS if c in frames.columns)]
    frames = frames.reindex(columns=columns)  # a run without any frame table has only the keys
    frames = frames.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    members = set(frames["video_id"]) | (set(copies["video_id"]) if copies is not None else set())
    assignment = assign_splits(members, copy_links(copies) + frame_links(links), settings.ratios, settings.seed)
    split_of = dict(zip(assignment["video_id"], assignment["split"]))
    frames["split"] = frames["video_id"].map(split_of)
    removed = dict(removed or {})
    gone = frames["video_id"].isin(removed)
    takedown = {"videos": dict(sorted(removed.items())), "frames": int(gone.sum())}
    frames = frames[~gone].reset_index(drop=True)
    assignment = assignment[~assignment["video_id"].isin(removed)].reset_index(drop=True)
    reason = np.where(cap_per_video(frames, settings.max_frames_per_video), "",
                      f"over splits.max_frames_per_video ({settings.max_frames_per_video})").astype(object)
    reason[frames["frame_id"].isin(set(unchecked)).to_numpy()] = UNCHECKED
    within = reason == ""
    by_class = cap_per_class(frames[within], settings.max_frames_per_class, settings.seed)
    reason[np.flatnonzero(within)] = by_class
    frames["kept"] = reason == ""
    frames["reason"] = reason
    capped = {"max_frames_per_video": int((~within).sum()),
              "max_frames_per_class": int(sum(bool(r) for r in by_class))}
    per_video = frames[frames["kept"]].groupby("video_id").size()
    videos = assignment.assign(frames=assignment["video_id"].map(per_video).fillna(0).astype("int64"))
    videos["kept"] = videos["frames"] > 0
    videos["reason"] = np.where(videos["kept"], "", "no frames in the exports")
    report = split_report(videos, settings.ratios, settings.seed, capped)
    return videos, frames, {"report": report, "takedown": takedown}


def split_report(videos: pd.DataFrame, ratios: Mapping, seed: int, capped: Mapping | None = None) -> dict:
    """What the summary says about the splits: the targets, videos and frames per split,
    the achieved shares of the frames, what the caps removed, the largest group, and
    notes where the targets were not met and why."""
    ratios = full_ratios(ratios)
    used = videos[videos["frames"] > 0]
    total = int(used["frames"].sum())
    frames = {name: int(used.loc[used["split"] == name, "frames"].sum()) for name in SPLIT_NAMES}
    groups = used.groupby("group").agg(videos=("video_id", "size"), frames=("frames", "sum"), split=("split", "first"))
    groups = groups.sort_values(["frames", "videos"], ascending=False, kind="stable")
    notes = []
    over = [(key, g) for key, g in groups.iterrows() if total and g.frames / total > ratios[g.split] + 1e-9]
    for key, g in over[:3]:
        notes.append(f"group {key} ({_count(g.videos, 'video')} with frames) holds {g.frames / total:.0%} of the "
                     f"frames, more than the "
                     f"{g.split} target of {ratios[g.split]:.0%}: a group is never divided between splits, so "
                     f"{g.split} cannot meet its target")
    if len(over) > 3:
        notes.append(f"{len(over) - 3} more groups are larger than their split's target")
    empty = [name for name in SPLIT_NAMES if ratios[name] > 0 and frames[name] == 0]
    if empty and total:
        notes.append(f"{', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no frames: {len(groups)} "
                     f"group{'s' if len(groups) != 1 else ''} of videos were placed by hash; add videos, or set "
                     "their ratio to 0")
    achieved = {name: round(frames[name] / total, 4) if total else None for name in SPLIT_NAMES}
    if total and not notes and max(abs(achieved[n] - ratios[n]) for n in SPLIT_NAMES) > 0.05:
        notes.append(f"{len(groups)} groups of videos were placed by hash: the achieved shares approach the targets "
                     "as the groups get many and small")
    largest = None
    if len(groups):
        key, g = next(groups.iterrows())
        largest = {"group": key, "videos": int(g.videos), "frames": int(g.frames), "split": g.split,
                   "share": round(g.frames / total, 4)}
    return {
        "ratios": ratios,
        "seed": int(seed),
        "groups": len(groups),
        "videos": {name: int((used["split"] == name).sum()) for name in SPLIT_NAMES},
        "frames": frames,
        "achieved": achieved,
        "capped": dict(capped or {"max_frames_per_video": 0, "max_frames_per_class": 0}),
        "largest_group": largest,
        "notes": notes,
    }


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe(report: dict) -> str:
    """The report in one line: frames, achieved share and target per split."""
    parts = []
    for name in SPLIT_NAMES:
        share = report["achieved"][name]
        shown = "-" if share is None else f"{share:.0%}"
        parts.append(f"{name} {_count(report['frames'][name], 'frame')} ({shown}, target {report['ratios'][name]:.0%})")
    return f"{_count(report['groups'], 'group')} of videos: " + ", ".join(parts)


def write_split_tables(videos_path, frames_path, videos: pd.DataFrame, frames: pd.DataFrame, record: dict) -> None:
    VIDEO.write(videos_path, VIDEO.table(videos, *SPLIT_VIDEO_FIELDS), record)
    FRAME.write(frames_path, FRAME.table(frames, *split_frame_fields(frames)), record)


def split_frames(paths) -> pd.DataFrame:
    """The frames the exports hold: the kept rows of the split frame table, with their
    split (and boxes)."""
    return FRAME.read_kept(paths)


def read_report(path) -> dict | None:
    """The split report a split table recorded."""
    return read_metadata(path).get("report")


def read_takedown(path) -> dict | None:
    """What the takedown removed from the split tables (videos with reasons, frames)."""
    return read_metadata(path).get("takedown")
