"""The stage registry: one ordered entry per stage, the single source for the rules'
input functions, the summary and its funnel, ``status.tsv``'s status words, the
``video-miner`` commands and the report.

Adding a stage = a rule file, a thin script, a library module, an env, a schema
section, docs and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


# Shard names are ``<list name>-<6 hex of the list key>-<5 digits>`` (sources.assign_shards):
# the pattern cannot match a user-facing file such as unique_frames.parquet.
SHARD_PATTERN = r"[A-Za-z0-9_-]+-[0-9a-f]{6}-[0-9]{5}"
RESULTS_FORMAT_VERSION = 2


@dataclass(frozen=True)
class Stage:
    name: str
    level: str  # video | clip | frame
    status: str  # a video's status once this stage has run for it
    label: str  # the funnel's label for what the stage keeps
    count: str  # its count's name: summary frames/videos[count], status.tsv frames_<count>
    switch: str | None = None  # the config section whose ``enabled`` turns it on; None: always on
    run_table: str | None = None  # one table for the whole run instead of one per shard
    counted: str = "kept"  # the boolean column the funnel counts
    run_log: str | None = None  # the run-wide job's log, with run_table
    # Other levels the stage reads when the config says so: (level, when(config)). It
    # reads that level's last enabled per-shard stage before it (see :func:`cross_upstream`).
    cross_reads: tuple[tuple[str, Callable[[dict], bool]], ...] = ()
    score: str | None = None  # a clip stage's score column: the clip export's scores[<column>]
    # A further condition on the config, besides ``switch`` (verify: on when the filter is, by default).
    when: Callable[[dict], bool] | None = None
    # The rule whose one job writes this stage's table with others' (the clip score stages
    # share one decode pass per video): its rule file, log and cache are named after it.
    job: str | None = None
    # Adds text to its level's final rows without deciding which survive (captions,
    # transcripts): no stage reads it as the stage before, the exports join it.
    annotates: bool = False

    def enabled(self, config: dict) -> bool:
        switched = self.switch is None or bool(config.get(self.switch, {}).get("enabled", False))
        return switched and (self.when is None or bool(self.when(config)))

    @property
    def per_shard(self) -> bool:
        return self.run_table is None

    def table(self, shard: str | None = None) -> str:
        """Its table: ``results/<stage>/{shard}.parquet``, or the run's one table."""
        if self.run_table:
            return self.run_table
        return f"results/{self.name}/{shard if shard is not None else '{shard}'}.parquet"

    @property
    def rule(self) -> str:
        """The rule that writes its table (``rules/<rule>.smk``)."""
        return self.job or self.name

    def log(self, shard: str | None = None) -> str:
        """The log of the job that writes ``table(shard)``."""
        if self.run_log:
            return self.run_log
        return f"logs/{self.rule}/{shard if shard is not None else '{shard}'}.log"

    def files(self, shard: str | None = None) -> str:
        """The folder of the files a per-shard stage owns (videos, frames, embeddings)."""
        return f"results/{self.name}/{shard if shard is not None else '{shard}'}"

    def cache(self, shard: str | None = None) -> str:
        """Undeclared per-video progress of a shard job, so a killed job resumes."""
        return f"results/.cache/{self.rule}/{shard if shard is not None else '{shard}'}"


STAGES: tuple[Stage, ...] = (
    Stage("download", "video", "downloaded", "videos downloaded", "downloaded"),
    Stage("probe", "video", "probed", "videos probed and within the filters", "probed"),
    Stage("video_dedup", "video", "unique", "videos that are no copy of another", "unique_videos",
          switch="video_dedup", run_table="results/video_dedup/videos.parquet", run_log="logs/video_dedup/videos.log"),
    Stage("shots", "clip", "split", "clips within the length limits", "shots", switch="shots"),
    # Scored in one decode pass per video (rule clip_scores), filtered in this order.
    Stage("flash", "clip", "flash_checked", "clips without flashes", "no_flash", switch="flash", score="flash",
          job="clip_scores"),
    Stage("ocr", "clip", "text_checked", "clips without burned-in text", "no_text", switch="ocr", score="text_area",
          job="clip_scores"),
    Stage("motion", "clip", "motion_scored", "clips in motion", "moving", switch="motion", score="motion",
          job="clip_scores"),
    Stage("aesthetic", "clip", "aesthetic_scored", "clips above the aesthetic minimum", "aesthetic",
          switch="aesthetic", score="aesthetic", job="clip_scores"),
    Stage("extract", "frame", "extracted", "frames extracted", "extracted",
          cross_reads=(("clip", lambda config: config["extract"]["strategy"] == "scene"),)),
    Stage("filter", "frame", "filtered", "frames passed the text filter", "passed_filter", switch="filter"),
    Stage("embed", "frame", "embedded", "frames unique within their video", "unique_in_video", switch="dedup"),
    Stage("dedup", "frame", "deduplicated", "frames unique across videos", "unique", switch="dedup",
          run_table="results/dedup/unique_frames.parquet", run_log="logs/dedup/cross_video.log"),
    Stage("detect", "frame", "detected", "frames with detections", "with_detections", switch="detection",
          counted="has_detections"),
    Stage("verify", "frame", "verified", "frames with verified detections", "with_verified_detections",
          switch="detection", counted="has_detections", when=lambda config: verify_enabled(config)),
    Stage("segment", "frame", "segmented", "frames with masks", "with_masks", switch="segment",
          counted="has_detections", when=lambda config: bool(config["detection"]["enabled"])),
    # Annotations of the final rows, last: speech to text per video, then captions of the
    # final frames and kept clips (both targets in one table per shard; the funnel counts
    # items captioned).
    Stage("audio", "video", "transcribed", "videos transcribed (or without an audio track)", "transcribed",
          switch="audio", annotates=True),
    Stage("captions", "frame", "captioned", "frames and clips captioned", "captioned", switch="captions",
          counted="captioned", annotates=True),
    # The faces and licence plates the exporters blur in the final frames.
    Stage("privacy", "frame", "privacy_checked", "frames checked for faces and licence plates", "privacy_checked",
          switch="privacy", counted="frames", annotates=True),
)
BY_NAME = {stage.name: stage for stage in STAGES}
# The frame stages whose tables carry boxes (and points, masks): detection and what refines it.
BOX_STAGES = ("detect", "verify", "segment")
# Detection backends that are hosted APIs: their jobs need a key, and no GPU.
API_BACKENDS = ("moondream", "dinox")


def verify_enabled(config: dict) -> bool:
    """Box verification runs with detection: ``detection.verify: auto`` (the default) turns
    it on when the text filter is on (its SigLIP2 checkpoint then scores the crops)."""
    detection = config["detection"]
    if not detection["enabled"]:
        return False
    choice = detection.get("verify", "auto")
    return bool(config["filter"]["enabled"]) if choice == "auto" else bool(choice)


def box_stage(config: dict, stages: Sequence[Stage] = STAGES) -> Stage | None:
    """The last enabled stage that writes boxes: its kept rows hold the final boxes."""
    boxes = [s for s in enabled_stages(config, stages) if s.name in BOX_STAGES]
    return boxes[-1] if boxes else None
# Every status a video can have, in order; ``complete`` means every enabled stage ran;
# ``rejected``: a stage decided against it (outside the probe's filters, a duplicate).
# A processed video whose items a takedown removed from the exports (status.tsv, list-videos).
TAKEN_DOWN = "taken down"
STATUSES: tuple[str, ...] = ("pending", *(s.status for s in STAGES), "complete", "rejected", "failed", TAKEN_DOWN)


def stage(name: str) -> Stage:
    return BY_NAME[name]


def enabled_stages(config: dict, stages: Sequence[Stage] = STAGES) -> list[Stage]:
    return [s for s in stages if s.enabled(config)]


def upstream(name: str, config: dict, stages: Sequence[Stage] = STAGES) -> Stage:
    """The stage whose kept rows ``name`` reads: the previous enabled stage at its level,
    else the last enabled per-shard stage of the video level (the first frame stage reads
    videos; a run-wide video stage would make every shard's extraction wait for all
    shards: the later frame stages read it instead, see :func:`video_gate`)."""
    names = [s.name for s in stages]
    current = stages[names.index(name)]
    before = [s for s in enabled_stages(config, stages)
              if names.index(s.name) < names.index(current.name) and not s.annotates]
    same_level = [s for s in before if s.level == current.level]
    if same_level:
        return same_level[-1]
    videos = [s for s in before if s.level == "video" and (s.per_shard or current.level == "video")]
    if not videos:
        raise ValueError(f"stage {name!r} has no stage before it")
    return videos[-1]


def cross_upstream(name: str, level: str, config: dict, stages: Sequence[Stage] = STAGES) -> Stage | None:
    """The stage of another ``level`` whose kept rows ``name`` reads under ``config`` (the
    last enabled per-shard stage of that level before it), or None when it reads none:
    extraction reads the clips for ``strategy: scene``."""
    names = [s.name for s in stages]
    current = stages[names.index(name)]
    if not any(lvl == level and when(config) for lvl, when in current.cross_reads):
        return None
    before = [s for s in enabled_stages(config, stages)
              if names.index(s.name) < names.index(name) and s.level == level and s.per_shard and not s.annotates]
    if not before:
        raise ValueError(f"stage {name!r} reads the {level} level, but no {level} stage is enabled")
    return before[-1]


def video_gate(config: dict, stages: Sequence[Stage] = STAGES) -> Stage | None:
    """The run-wide video stage (video_dedup) whose kept videos the frame stages after
    extraction and the exports keep to: duplicates stay extracted, and the model stages
    skip them."""
    last = final_stage("video", config, stages)
    return last if last is not None and not last.per_shard else None


def final_stage(level: str, config: dict, stages: Sequence[Stage] = STAGES) -> Stage | None:
    """The last enabled stage of a level that decides which rows survive: its kept rows
    are the level's final set (annotating stages only add to them)."""
    at_level = [s for s in enabled_stages(config, stages) if s.level == level and not s.annotates]
    return at_level[-1] if at_level else None
