"""What the user takes home from the clip level: cut clips (mp4 files), the curated clip
export (``metadata.jsonl`` and its parquet twin, one line per clip with every reason it
was dropped) and an optional WebDataset of the kept clips.

Cutting uses PyAV only (no ffmpeg process): a clip whose first frame is a keyframe and
whose end is a keyframe or the video's end is a stream copy of its packets (no quality
lost, no decoding); any other clip, or any clip taller than ``max_height``, is decoded
and re-encoded with H.264. A video's copied clips take one demux pass, its re-encoded
clips one decode pass, whatever their number. Clips hold the video stream only, with
the source's display rotation (a phone video's clip plays upright).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Sequence

import av
import numpy as np
import pandas as pd
import pyarrow as pa

from video_miner.defaults import section_defaults
from video_miner.framestore import add_member
from video_miner.fsutil import atomic_dir, atomic_path, safe_name
from video_miner.provenance import PROVENANCE_FIELDS
from video_miner.tables.clip import CLIP
from video_miner.video import FrameIndex, VideoError, build_frame_index, count_decode_pass, open_video
from video_miner.workers import Isolation, Limits

log = logging.getLogger(__name__)

_DEFAULTS = section_defaults("clips")
# The cut table's own columns, after the clip level's shared ones.
CUT_FIELDS = (
    pa.field("path", pa.string()),  # results/cut/<shard>/<video>/<clip>.mp4; null when not cut
    pa.field("method", pa.string()),  # copy | encode
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
)
# The clip export's columns, in order.
EXPORT_SCHEMA = pa.schema([
    *CLIP.fields,
    pa.field("split", pa.string()),
    pa.field("kept", pa.bool_(), nullable=False),
    pa.field("reasons", pa.list_(pa.string()), nullable=False),
    pa.field("scores", pa.map_(pa.string(), pa.float64()), nullable=False),
    pa.field("caption", pa.string()),
    pa.field("transcript", pa.string()),
    pa.field("path", pa.string()),
    # Where the clip's video came from (empty for local files and archives) and the run id.
    *(pa.field(name, pa.string()) for name in PROVENANCE_FIELDS),
])


@dataclass(frozen=True)
class CutSettings:
    """The ``clips`` section's keys that change a cut file."""

    max_height: int | None = _DEFAULTS["max_height"]
    crf: int = _DEFAULTS["crf"]

    @classmethod
    def from_config(cls, section: dict) -> "CutSettings":
        return cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})


def clip_file_name(video_id: str, clip_id: str) -> str:
    """``<video_id>/<clip_id>.mp4``, ids made path-safe."""
    return f"{safe_name(video_id)}/{safe_name(clip_id)}.mp4"


def out_size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    """The clip's size: the video's, or scaled to ``max_height`` (aspect kept, even sides
    for 4:2:0)."""
    if not max_height or height <= max_height:
        return width, height
    scale = max_height / height
    return max(2, round(width * scale / 2) * 2), max(2, round(max_height / 2) * 2)


def can_copy(index: FrameIndex, start: int, end: int, resized: bool) -> bool:
    """A stream copy keeps every frame decodable when the clip starts on a keyframe and
    ends where the next keyframe (or the video's end) is."""
    return not resized and bool(index.keyframe[start]) and (end >= len(index) or bool(index.keyframe[end]))


def _copy_clips(path: str, clips: Sequence[tuple[int, int, str]], index: FrameIndex, targets: dict[str, Path]) -> None:
    """Stream copies: one demux pass; each clip's packets with their timestamps shifted
    so it starts at zero."""
    container, stream = open_video(path)
    with container:
        outputs = {}
        try:
            for start, end, clip in clips:
                out = av.open(str(targets[clip]), "w", format="mp4")
                out_stream = out.add_stream_from_template(stream)
                start_pts = int(index.pts[start])
                end_pts = int(index.pts[end]) if end < len(index) else None
                outputs[clip] = (out, out_stream, start_pts, end_pts)
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                for out, out_stream, start_pts, end_pts in outputs.values():
                    if packet.pts >= start_pts and (end_pts is None or packet.pts < end_pts):
                        copy = av.Packet(bytes(packet))
                        copy.pts, copy.dts = packet.pts - start_pts, (packet.dts if packet.dts is not None
                                                                      else packet.pts) - start_pts
                        copy.duration, copy.time_base = packet.duration, packet.time_base
                        copy.is_keyframe = packet.is_keyframe
                        copy.stream = out_stream
                        out.mux(copy)
        finally:
            for out, *_ in outputs.values():
                out.close()


def _encode_clips(path: str, clips: Sequence[tuple[int, int, str]], index: FrameIndex, targets: dict[str, Path],
                  settings: CutSettings) -> tuple[int, int]:
    """Re-encoded clips: one decode pass over the video (up to the last clip's end),
    each frame handed to every clip that spans it."""
    container, stream = open_video(path)
    count_decode_pass(path)
    size = None
    with container:
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        pending = sorted(clips)
        open_clips: dict[str, tuple] = {}
        last = max(end for _, end, _ in clips)
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                position = int(np.searchsorted(index.pts, frame.pts))
                if size is None:
                    size = out_size(frame.width, frame.height, settings.max_height)
                while pending and pending[0][0] <= position:
                    start, end, clip = pending.pop(0)
                    out = av.open(str(targets[clip]), "w", format="mp4")
                    video = out.add_stream("libx264", rate=rate)
                    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
                    video.time_base = stream.time_base
                    video.options = {"crf": str(settings.crf), "preset": "veryfast"}
                    if frame.rotation:  # a phone video's display matrix: a copy keeps it, so must this
                        video.set_display_rotation(int(frame.rotation))
                    open_clips[clip] = (out, video, int(index.pts[start]), end)
                for clip, (out, video, start_pts, end) in list(open_clips.items()):
                    if position >= end:
                        _close(out, video)
                        del open_clips[clip]
                        continue
                    scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                    scaled.pts, scaled.time_base = frame.pts - start_pts, stream.time_base
                    for packet in video.encode(scaled):
                        out.mux(packet)
                if position + 1 >= last and not pending and not open_clips:
                    break
        finally:
            for out, video, *_ in open_clips.values():
                _close(out, video)
    return size or (0, 0)


def _close(out, video) -> None:
    for packet in video.encode():
        out.mux(packet)
    out.close()


def cut_video(path: str | os.PathLike, clips: Sequence[tuple[int, int, str]], out_dir: str | os.PathLike,
              video_id: str, settings: CutSettings) -> list[dict]:
    """Cut one video's clips ``(start_frame, end_frame, clip_id)`` into
    ``out_dir/<video_id>/<clip_id>.mp4``: one row per clip (``path`` relative to
    ``out_dir``, ``method``, ``width``, ``height``). Raises :class:`VideoError`."""
    path = os.fspath(path)
    index = build_frame_index(path)
    if index is None or len(index) == 0:
        raise VideoError("no frame timestamps to cut at")
    container, stream = open_video(path)
    with container:
        width, height = stream.codec_context.width, stream.codec_context.height
    size = out_size(width, height, settings.max_height)
    resized = size != (width, height)
    clips = [(int(a), int(min(b, len(index))), c) for a, b, c in clips if int(a) < min(int(b), len(index))]
    targets = {c: Path(out_dir, clip_file_name(video_id, c)) for _, _, c in clips}
    for target in targets.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    copied = [c for c in clips if can_copy(index, c[0], c[1], resized)]
    encoded = [c for c in clips if c not in copied]
    if copied:
        _copy_clips(path, copied, index, targets)
    if encoded:
        size = _encode_clips(path, encoded, index, targets, settings)
    return [{"clip_id": c, "path": clip_file_name(video_id, c), "method": "copy" if (a, b, c) in copied else "encode",
             "width": int(size[0] if (a, b, c) in encoded or resized else width),
             "height": int(size[1] if (a, b, c) in encoded or resized else height)} for a, b, c in clips]


def read_shard_clips(downloads, probes, clip_tables, keep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A clip job's inputs from its tables: the shard's kept videos (``file``,
    ``location``, ``filesize``, ``duration_s``) and their kept clips, copies of a video
    (video_dedup's ``keep`` table) left out."""
    from video_miner.extract import videos_to_extract
    from video_miner.tables.video import VIDEO, kept_videos

    videos = videos_to_extract(VIDEO.read_kept(downloads, columns=["file", "location", "filesize"]),
                               VIDEO.read_kept(probes, columns=["duration_s"]))
    return videos, CLIP.read_kept(clip_tables, videos=kept_videos(keep))


class ShardVideos(NamedTuple):
    """What a per-video clip job (cutting, scoring) knows of each video that has clips."""

    files: dict[str, str]
    durations: dict[str, float]  # for the time limit; empty when unknown
    sizes: dict[str, int]
    spans: dict[str, list]  # [start_frame, end_frame, clip_id] per clip, in table order
    sources: dict[str, list]  # what a cached record must match to be reused: location, size, spans


def shard_videos(clips: pd.DataFrame, videos: pd.DataFrame) -> ShardVideos:
    videos = videos[videos["video_id"].isin(set(clips["video_id"]))]
    spans = {v: [[int(r.start_frame), int(r.end_frame), r.clip_id] for r in part.itertuples(index=False)]
             for v, part in clips.groupby("video_id", sort=False)}
    return ShardVideos(
        files=dict(zip(videos["video_id"], videos["file"])),
        durations=dict(zip(videos["video_id"], videos["duration_s"])) if "duration_s" in videos else {},
        sizes=dict(zip(videos["video_id"], videos["filesize"])),
        spans=spans,
        sources={v: [loc, int(size), spans[v]] for v, loc, size in
                 zip(videos["video_id"], videos["location"], videos["filesize"])})


def cut_shard(clips: pd.DataFrame, videos: pd.DataFrame, out_dir: str | os.PathLike, cache_dir: str | os.PathLike,
              settings: CutSettings, workers: int = 1, limits: Limits | None = None) -> tuple[pa.Table, dict]:
    """Cut the kept ``clips`` of a shard's ``videos`` (``video_id``, ``file``,
    ``location``, ``filesize``, ``duration_s``) into ``out_dir``, each video in a worker
    process under ``limits``; files are made in the cache (a killed job keeps finished
    videos) and hard-linked into ``out_dir``. One row per clip; a video that cannot be
    cut gives its clips ``kept`` false with the reason."""
    from video_miner.shardjob import VideoCache, cached_map, link_file

    limits = limits or Limits.from_config({})
    files, durations, sizes, spans, sources = shard_videos(clips, videos)
    cache = VideoCache(cache_dir, asdict(settings))
    cache.prune(files)

    def work(video_id: str) -> dict:
        folder = cache.path(video_id)
        shutil.rmtree(folder, ignore_errors=True)  # a killed attempt's partial files
        started = time.perf_counter()
        try:
            rows = cut_video(files[video_id], [tuple(s) for s in spans[video_id]], folder, video_id, settings)
        except (VideoError, av.FFmpegError) as exc:
            return {"video_id": video_id, "source": sources[video_id], "ok": False, "reason": str(exc), "rows": []}
        return {"video_id": video_id, "source": sources[video_id], "ok": True, "reason": None, "rows": rows,
                "seconds": round(time.perf_counter() - started, 3)}

    def reusable(record: dict) -> bool:
        return record["source"] == sources[record["video_id"]]

    def failed(video_id: str, reason: str) -> dict:
        return {"video_id": video_id, "source": None, "ok": False, "reason": reason, "rows": []}

    isolation = Isolation("cut", "decoder", memory_bytes=limits.memory_bytes,
                          timeout_s=lambda v: limits.clips_timeout_s(durations.get(v), sizes[v]))
    records = cached_map(cache, list(files), work, workers, "videos cut into clips", reusable=reusable,
                         failed=failed, isolation=isolation)
    out_rows, outcomes = [], {}
    by_clip = clips.set_index("clip_id")
    for video_id, record in records.items():
        made = {r["clip_id"]: r for r in record["rows"]}
        for start, end, clip in spans[video_id]:
            row = by_clip.loc[clip]
            base = {"video_id": video_id, "clip_id": clip, "start_frame": start, "end_frame": end,
                    "start_s": float(row["start_s"]), "end_s": float(row["end_s"])}
            cut = made.get(clip)
            if cut is not None and (cache.path(video_id) / cut["path"]).is_file():
                target = Path(out_dir, cut["path"])
                link_file(cache.path(video_id) / cut["path"], target)
                out_rows.append({**base, "kept": True, "reason": "", "path": target.as_posix(),
                                 "method": cut["method"], "width": cut["width"], "height": cut["height"]})
            else:
                out_rows.append({**base, "kept": False, "reason": record["reason"] or "not cut", "path": None,
                                 "method": None, "width": None, "height": None})
        outcomes[video_id] = {"ok": record["ok"], "reason": record["reason"], "clips": len(record["rows"]),
                              "seconds": record.get("seconds")}
    table = CLIP.table(out_rows, *CUT_FIELDS)
    return table, {"video_outcomes": outcomes, "clips": len(out_rows),
                   "copied": sum(r["method"] == "copy" for r in out_rows), "settings": asdict(settings)}


# --- the export --------------------------------------------------------------------------


def clip_export(stage_tables: dict[str, pd.DataFrame], scores: dict[str, str], duplicates: dict[str, str],
                cut: pd.DataFrame | None, captions: dict[str, str] | None = None,
                splits: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per clip of the first clip stage (every shot or window): ``kept`` when
    every clip stage kept it, its video is no duplicate and (with ``cut``) its file was
    made; ``reasons``: ``"<stage>: <reason>"`` for each that dropped it; ``scores``: the
    value of each score stage that scored it, keyed by its score column (``scores``: stage
    name -> column; e.g. ``{"flash": 0.0, "text_area": 0.12}``); ``path`` of the cut
    file (relative to the export folder); ``caption``: the captions stage's, by clip id
    (``transcript``, the audio stage's, is added by the caller: null here); ``split``:
    its video's (``splits``: video id -> split, :func:`video_miner.splits.video_splits`)."""
    names = list(stage_tables)
    base = stage_tables[names[0]]
    columns = ["video_id", "clip_id", "start_frame", "end_frame", "start_s", "end_s"]
    rows = base[columns].copy().reset_index(drop=True)
    rows["split"] = rows["video_id"].map(splits or {})
    reasons: dict[str, list[str]] = {c: [] for c in rows["clip_id"]}
    clip_scores: dict[str, dict] = {c: {} for c in rows["clip_id"]}
    captions = dict(captions or {})
    for name in names:
        table = stage_tables[name]
        for clip, kept, reason in zip(table["clip_id"], table["kept"], table["reason"]):
            if clip in reasons and not kept:
                reasons[clip].append(f"{name}: {reason}")
        if name in scores and scores[name] in table:
            for clip, value in zip(table["clip_id"], table[scores[name]]):
                if clip in clip_scores and value is not None and not pd.isna(value):
                    clip_scores[clip][scores[name]] = float(value)
    # A clip reaches a later stage only if the earlier ones kept it: one that is absent
    # from a later table was dropped before it, and says so already.
    for clip, video in zip(rows["clip_id"], rows["video_id"]):
        if video in duplicates:
            reasons[clip].append(f"video_dedup: {duplicates[video]}")
    paths: dict[str, str] = {}
    if cut is not None:
        for clip, kept, reason, path in zip(cut["clip_id"], cut["kept"], cut["reason"], cut["path"]):
            if kept:
                paths[clip] = "files/" + "/".join(Path(path).parts[-2:])
            elif clip in reasons:
                reasons[clip].append(f"cut: {reason}")
    rows["kept"] = [not reasons[c] for c in rows["clip_id"]]
    rows["reasons"] = [reasons[c] for c in rows["clip_id"]]
    rows["scores"] = [clip_scores[c] for c in rows["clip_id"]]
    rows["caption"] = [captions.get(c) for c in rows["clip_id"]]
    rows["transcript"] = None
    rows["path"] = [paths.get(c) if k else None for c, k in zip(rows["clip_id"], rows["kept"])]
    return rows


def with_clip_provenance(rows: pd.DataFrame, videos: dict[str, dict]) -> pd.DataFrame:
    """The export rows with their videos' provenance fields (``videos``:
    :func:`video_miner.provenance.video_provenance`)."""
    rows = rows.copy()
    for name in PROVENANCE_FIELDS:
        rows[name] = [videos.get(v, {}).get(name) for v in rows["video_id"]]
    return rows


def write_clip_export(out_dir: str | os.PathLike, rows: pd.DataFrame, cut: pd.DataFrame | None) -> dict:
    """``metadata.jsonl`` and ``metadata.parquet`` in ``out_dir``; with ``cut``, the kept
    clips' files hard-linked to ``out_dir/files/<video_id>/<clip_id>.mp4``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / "files") as tmp:
        if cut is not None:
            sources = {c: p for c, p, k in zip(cut["clip_id"], cut["path"], cut["kept"]) if k}
            for clip, path in zip(rows["clip_id"], rows["path"]):
                if isinstance(path, str):
                    target = Path(tmp, Path(path).relative_to("files"))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(sources[clip], target)
                    except OSError:
                        shutil.copyfile(sources[clip], target)
    records = [_jsonable(r) for r in rows.to_dict("records")]
    with atomic_path(out_dir / "metadata.jsonl", suffix=".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    table = pa.Table.from_pylist([{**r, "scores": list(r["scores"].items())} for r in records], schema=EXPORT_SCHEMA)
    import pyarrow.parquet as pq

    with atomic_path(out_dir / "metadata.parquet", suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return {"clips": len(records), "kept": sum(r["kept"] for r in records),
            "files": sum(r["path"] is not None for r in records)}


def _jsonable(record: dict) -> dict:
    """Plain JSON values; a missing text (pandas' NaN) is null."""
    out = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        if key in ("split", "caption", "transcript", "path", *PROVENANCE_FIELDS) and not isinstance(value, str):
            value = None
        out[key] = value
    return out


def write_webdataset(out_dir: str | os.PathLike, export_dir: str | os.PathLike, max_clips: int) -> dict:
    """``out_dir/shard-XXXXXX.tar``: each kept, cut clip as ``<clip_id>.mp4`` and
    ``<clip_id>.json`` (its metadata line), ``max_clips`` per tar, in clip order. Tar
    members have fixed owners and times, so the same clips give the same bytes."""
    export_dir = Path(export_dir)
    lines = [json.loads(line) for line in (export_dir / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    kept = [line for line in lines if line["kept"] and line["path"]]
    tars = 0
    with atomic_dir(out_dir) as tmp:
        for first in range(0, len(kept), max_clips):
            with tarfile.open(Path(tmp, f"shard-{tars:06d}.tar"), "w", format=tarfile.USTAR_FORMAT) as tar:
                for line in kept[first : first + max_clips]:
                    key = safe_name(line["clip_id"]).replace(".", "_")
                    add_member(tar, f"{key}.mp4", (export_dir / line["path"]).read_bytes())
                    add_member(tar, f"{key}.json", json.dumps(line, ensure_ascii=False, sort_keys=True).encode())
            tars += 1
    return {"tars": tars, "clips": len(kept)}

