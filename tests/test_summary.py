import json
from pathlib import Path

import pandas as pd

from video_miner.download import DOWNLOAD_FIELDS
from video_miner.logs import JOB_FAILED
from video_miner.probe import PROBE_FIELDS
from video_miner.summary import STATUS_COLUMNS, VIDEO_TABLE_COLUMNS, summarize_files
from video_miner.tables.frame import FRAME
from video_miner.tables.video import VIDEO

DISK_FULL = "OSError: [Errno 28] No space left on device"


def frame_rows(video_id, count, kept=True, **extra):
    return [{"video_id": video_id, "frame_index": i, "frame_id": f"{video_id}/{i:08d}", "timestamp_s": float(i),
             "width": 64, "height": 48, "path": f"{video_id}/{i}.jpg", "kept": kept, **extra} for i in range(count)]


def test_summary_and_status_table_from_stage_tables(tmp_path):
    downloads = [
        {"video_id": "a", "source": "url", "location": "https://x/a.mp4", "kept": True, "title": "A\tclip\n\x1b[2J",
         "filesize": 1000, "seconds": 1.5},
        {"video_id": "b", "source": "url", "location": "https://x/b.mp4", "kept": False,
         "reason": "HTTP Error 503", "transient": True, "seconds": 4.0},
        {"video_id": "c", "source": "local", "location": "clips/c.mp4", "kept": True, "seconds": 0.01},
    ]
    VIDEO.write(tmp_path / "download.parquet", VIDEO.table(downloads, *DOWNLOAD_FIELDS), {"seconds": 5.51})
    probed = [{"video_id": "a", "kept": True, "codec": "h264", "width": 320, "height": 240, "duration_s": 3.0,
               "is_vfr": False, "phash": b"\0" * 64},
              {"video_id": "c", "kept": True, "codec": "vp9", "width": 64, "height": 48, "duration_s": 1.0}]
    VIDEO.write(tmp_path / "probe.parquet", VIDEO.table(probed, *PROBE_FIELDS), {"seconds": 0.25})
    outcomes = {
        "a": {"ok": True, "reason": None, "frames_in_video": 90, "decode_errors": 1, "seconds": 0.5},
        "c": {"ok": False, "reason": "no video stream (audio-only or not a video)", "frames_in_video": 0,
              "decode_errors": 0, "seconds": 0.1},
    }
    FRAME.write(tmp_path / "extract.parquet", FRAME.table(frame_rows("a", 3)),
                {"video_outcomes": outcomes, "seconds": 0.6})
    filtered = frame_rows("a", 3)
    filtered[1]["kept"], filtered[1]["reason"] = False, "below threshold"
    FRAME.write(tmp_path / "filter.parquet", FRAME.table(filtered), {"seconds": 2.0})
    rejected = [{"input": "ftp://x", "origin": "urls[3]", "reason": "only http and https URLs are accepted"}]
    tables = {"download": [tmp_path / "download.parquet"], "probe": [tmp_path / "probe.parquet"],
              "extract": [tmp_path / "extract.parquet"],
              "filter": [tmp_path / "filter.parquet"]}
    summary = summarize_files(tables, rejected, 2, tmp_path / "s.json", tmp_path / "s.tsv", origins={"a": "urls[0]"},
                              metadata_dir=tmp_path / "metadata")

    assert summary["stages"] == ["download", "probe", "extract", "filter"]
    assert summary["videos"] == {"total": 3, "ok": 1, "failed": 2, "rejected": 0, "duplicates_in_input": 2,
                                  "rejected_inputs": 1}
    assert summary["failed_videos"] == [
        {"video_id": "b", "location": "https://x/b.mp4", "stage": "download", "reason": "HTTP Error 503",
         "retryable": True},
        {"video_id": "c", "location": "clips/c.mp4", "stage": "extract",
         "reason": "no video stream (audio-only or not a video)", "retryable": False},
    ]
    assert summary["frames"] == {"in_videos": 90, "decode_errors": 1, "extracted": 3, "passed_filter": 2,
                                 "unique_in_video": None, "unique": None, "with_detections": None,
                                 "with_verified_detections": None, "with_masks": None}  # stages off
    assert [(s["stage"], s["count"]) for s in summary["funnel"]] == [("download", 2), ("probe", 2), ("extract", 3),
                                                                       ("filter", 2)]
    assert summary["stage_seconds"] == {"download": 5.51, "probe": 0.25, "extract": 0.6, "filter": 2.0, "total": 8.36}
    assert summary["format_version"] == 2
    assert json.loads((tmp_path / "s.json").read_text()) == summary

    table = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert table.columns.tolist() == STATUS_COLUMNS
    assert table["status"].tolist() == ["complete", "failed", "failed"]
    assert table["failed_stage"].fillna("").tolist() == ["", "download", "extract"]
    assert table["frames_passed_filter"].fillna(-1).tolist() == [2, 0, 0]
    assert table["frames_unique"].isna().all()  # dedup was off
    assert table["origin"].fillna("").tolist() == ["urls[0]", "", ""]
    # Failed videos leave counts and sizes empty, not the others as floats; text from outside is escaped.
    text = pd.read_csv(tmp_path / "s.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert len((tmp_path / "s.tsv").read_text().splitlines()) == 4
    assert text["width"].tolist() == ["320", "", "64"] and text["frames_passed_filter"].tolist() == ["2", "0", "0"]
    assert text["frames_in_video"].tolist() == ["90", "0", "0"] and text["frames_unique"].tolist() == ["", "", ""]
    assert text.loc[0, "title"] == "A\\tclip\\n\\x1b[2J"
    # status.tsv renders the video table, which has every probe field (no hash bytes).
    videos = pd.read_parquet(tmp_path / "metadata" / "videos.parquet")
    assert videos.columns.tolist() == VIDEO_TABLE_COLUMNS and "phash" not in videos
    assert videos["codec"].fillna("").tolist() == ["h264", "", "vp9"] and videos["width"].dtype == "Int64"
    assert videos["status"].tolist() == table["status"].tolist() and videos.loc[0, "filesize"] == 1000


def test_a_run_without_videos_still_has_its_summary(tmp_path):
    summary = summarize_files({"download": [], "extract": []}, [], 0, tmp_path / "s.json", tmp_path / "s.tsv")
    assert summary["videos"]["total"] == 0 and summary["frames"]["extracted"] == 0
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t").columns.tolist() == STATUS_COLUMNS


def test_a_failed_run_summarises_what_finished_and_names_the_failed_jobs(tmp_path):
    import os
    import time

    from video_miner.sources import VideoSource
    from video_miner.stages import stage
    from video_miner.summary import summarize_failed_run

    shards = {"s-aaaaaa-00000": ["a"], "s-aaaaaa-00001": ["b"], "s-aaaaaa-00002": ["c"], "s-aaaaaa-00003": ["d"]}
    sources = {v: VideoSource(v, "url", f"https://x/{v}.mp4", f"urls[{i}]", "urls") for i, v in enumerate("abcd")}
    started = time.time()

    def write(name, shard, level, rows, record=None):
        path = tmp_path / stage(name).table(shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = DOWNLOAD_FIELDS if name == "download" else ()
        level.write(path, level.table(rows, *extra), record or {})

    def log(name, shard, age_s=0.0):
        path = tmp_path / stage(name).log(shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"2026-01-01 00:00:00,000 INFO video_miner: started\n2026-01-01 00:00:01,000 {JOB_FAILED}"
                        "OSError: [Errno 28] No space left on device\nTraceback ...\n")
        os.utime(path, (started - age_s, started - age_s))

    # a: downloaded and extracted. b: downloaded, its extract job failed in this run.
    # c: its download job failed in this run, so its extract job never ran.
    # d: downloaded; Snakemake stopped before its extract job started.
    write("download", "s-aaaaaa-00003", VIDEO, [{"video_id": "d", "source": "url", "location": "https://x/d.mp4",
                                                "kept": True}])
    write("download", "s-aaaaaa-00000", VIDEO, [{"video_id": "a", "source": "url", "location": "https://x/a.mp4",
                                                "kept": True}])
    write("extract", "s-aaaaaa-00000", FRAME, frame_rows("a", 2), {"video_outcomes": {"a": {"ok": True}}})
    write("download", "s-aaaaaa-00001", VIDEO, [{"video_id": "b", "source": "url", "location": "https://x/b.mp4",
                                                "kept": True}])
    log("extract", "s-aaaaaa-00001")
    log("download", "s-aaaaaa-00002")
    log("extract", "s-aaaaaa-00002", age_s=3600)  # from an earlier run: not this run's failure

    # The splits job had finished (a run that fails later, at its upload, keeps them).
    from video_miner.splits import SplitSettings, make_splits, write_split_tables

    split_videos, split_frames, record = make_splits(pd.DataFrame(frame_rows("a", 2)), None, None, SplitSettings())
    (tmp_path / "results" / "splits").mkdir(parents=True)
    write_split_tables(tmp_path / "results" / "splits" / "videos.parquet",
                       tmp_path / "results" / "splits" / "frames.parquet", split_videos, split_frames, record)

    summary = summarize_failed_run(["download", "extract"], shards, sources, [], 0, started, root=tmp_path)
    assert summary["complete"] is False
    assert summary["splits"]["frames"]["train"] + summary["splits"]["frames"]["val"] + \
        summary["splits"]["frames"]["test"] == 2
    assert summary["failed_jobs"] == [
        {"stage": "download", "shard": "s-aaaaaa-00002", "log": "logs/download/s-aaaaaa-00002.log",
         "error": DISK_FULL, "videos": 1},
        {"stage": "extract", "shard": "s-aaaaaa-00001", "log": "logs/extract/s-aaaaaa-00001.log",
         "error": DISK_FULL, "videos": 1},
    ]
    assert summary["jobs_not_run"] == 2
    table = pd.read_csv(tmp_path / "results" / "status.tsv", sep="\t").set_index("video_id")
    assert table.loc["a", "status"] == "complete"
    assert table.loc["d", "status"] == "downloaded" and pd.isna(table.loc["d", "failed_stage"])
    assert table.loc["b", ["status", "failed_stage", "reason"]].tolist() == [
        "failed", "extract", f"extract job failed: {DISK_FULL}; see logs/extract/s-aaaaaa-00001.log"]
    assert table.loc["c", ["status", "failed_stage", "location", "source"]].tolist() == [
        "failed", "download", "https://x/c.mp4", "url"]
    assert table.loc["c", "reason"] == f"download job failed: {DISK_FULL}; see logs/download/s-aaaaaa-00002.log"


def test_filtered_and_duplicate_videos_are_rejected_not_failed(tmp_path):
    from video_miner.videodedup import VIDEO_DEDUP_FIELDS

    where = {"source": "local", "location": "x.mp4", "kept": True}
    VIDEO.write(tmp_path / "d.parquet", VIDEO.table([{"video_id": v, **where} for v in "abcd"], *DOWNLOAD_FIELDS), {})
    probed = [{"video_id": "a", "kept": True, "width": 640}, {"video_id": "b", "kept": True, "width": 320},
              {"video_id": "c", "kept": False, "reason": "duration 3.00 s is below probe.filters.min_duration_s (5 s)",
               "rejected": True},
              {"video_id": "d", "kept": False, "reason": "not a video: the file is JSON", "rejected": False}]
    VIDEO.write(tmp_path / "p.parquet", VIDEO.table(probed, *PROBE_FIELDS), {})
    groups = [{"video_id": "a", "kept": True, "rejected": False},
              {"video_id": "b", "kept": False, "reason": "duplicate of a", "rejected": True, "duplicate_of": "a",
               "distance": 1.0, "match": "near"}]
    VIDEO.write(tmp_path / "g.parquet", VIDEO.table(groups, *VIDEO_DEDUP_FIELDS), {})
    tables = {"download": [tmp_path / "d.parquet"], "probe": [tmp_path / "p.parquet"],
              "video_dedup": [tmp_path / "g.parquet"]}
    summary = summarize_files(tables, [], 0, tmp_path / "s.json", tmp_path / "s.tsv", metadata_dir=tmp_path)
    assert {k: summary["videos"][k] for k in ("ok", "failed", "rejected")} == {"ok": 1, "failed": 1, "rejected": 2}
    assert [(r["video_id"], r["stage"]) for r in summary["rejected_videos"]] == [("b", "video_dedup"), ("c", "probe")]
    assert [f["video_id"] for f in summary["failed_videos"]] == ["d"]
    videos = pd.read_parquet(tmp_path / "videos.parquet").set_index("video_id")
    assert videos["status"].tolist() == ["complete", "rejected", "rejected", "failed"]
    assert (videos.loc["b", "duplicate_of"], videos.loc["b", "duplicate_distance"]) == ("a", 1.0)
    assert [(r["stage"], r["count"]) for r in summary["funnel"]] == [("download", 4), ("probe", 2), ("video_dedup", 1)]


def test_clips_are_counted_and_a_failed_shots_job_ends_with_the_summary(tmp_path):
    """The clip level in the summary: clips kept per video, the funnel's clip step, a
    video the shots stage could not decode failed at shots; a failed shots job names its
    log like any other."""
    import time

    from video_miner.shots import SHOTS_FIELDS, failed_row
    from video_miner.sources import VideoSource
    from video_miner.stages import stage
    from video_miner.summary import summarize_failed_run
    from video_miner.tables.clip import CLIP

    shards = {"s-aaaaaa-00000": ["a", "b"], "s-aaaaaa-00001": ["c"]}
    sources = {v: VideoSource(v, "url", f"https://x/{v}.mp4", f"urls[{i}]", "urls") for i, v in enumerate("abc")}
    started = time.time()
    for shard, ids in shards.items():
        path = tmp_path / stage("download").table(shard)
        VIDEO.write(path, VIDEO.table([{"video_id": v, "source": "url", "location": f"https://x/{v}.mp4", "kept": True}
                                       for v in ids], *DOWNLOAD_FIELDS), {})
    clips = [{"video_id": "a", "clip_id": f"a-{s:06d}", "start_frame": s, "end_frame": s + 50, "start_s": s / 25,
              "end_s": (s + 50) / 25, "kept": s > 0, "reason": "" if s else "shorter than shots.min_s",
              "boundary_score": None} for s in (0, 50, 100)] + [failed_row("b", "empty file")]
    CLIP.write(tmp_path / stage("shots").table("s-aaaaaa-00000"), CLIP.table(clips, *SHOTS_FIELDS),
               {"video_outcomes": {"a": {"ok": True}, "b": {"ok": False, "reason": "empty file"}}})
    log = tmp_path / stage("shots").log("s-aaaaaa-00001")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("Traceback ...\n")
    summary = summarize_failed_run(["download", "shots"], shards, sources, [], 0, started, root=tmp_path)
    # the score stages were off: their counts are null, as for frame stages that were off
    assert summary["clips"] == {"total": 4, "shots": 2, "no_flash": None, "no_text": None, "moving": None,
                                "aesthetic": None}
    assert summary["funnel"][-1] == {"stage": "shots", "level": "clip", "label": "clips within the length limits",
                                     "count": 2}
    assert summary["failed_jobs"] == [{"stage": "shots", "shard": "s-aaaaaa-00001",
                                       "log": "logs/shots/s-aaaaaa-00001.log", "error": None, "videos": 1}]
    table = pd.read_csv(tmp_path / "results" / "status.tsv", sep="\t").set_index("video_id")
    assert table.loc["a", ["status", "clips_shots"]].tolist() == ["complete", 2]
    assert table.loc["b", ["status", "failed_stage", "reason"]].tolist() == ["failed", "shots", "empty file"]
    assert table.loc["c", ["status", "failed_stage"]].tolist() == ["failed", "shots"]


def test_captions_audio_and_privacy_sections_add_up_their_jobs_and_fail_videos_with_the_reason(tmp_path):
    """Two captions jobs' records add up (made, failed by reason, tokens); a video with a
    failed request is failed at captions, one the spend guard held back is not; audio
    counts its videos; two privacy jobs add up (frames checked, with regions, unreadable).
    The report's funnel says what the captions cost."""

    from video_miner.report import plot_report
    from video_miner.tables import write_parquet
    from video_miner.texts import CAPTION_SCHEMA

    downloads = [{"video_id": v, "source": "url", "location": f"https://x/{v}.mp4", "kept": True} for v in "abc"]
    VIDEO.write(tmp_path / "download.parquet", VIDEO.table(downloads, *DOWNLOAD_FIELDS), {})
    for n, (record, outcomes) in enumerate([
        ({"frames": 3, "clips": 1, "captioned": 3, "sent": 4, "cached": 0, "failed": {"captions API: HTTP 400: bad": 1},
          "tokens": {"prompt": 30, "completion": 6, "total": 36}},
         {"a": {"ok": False, "reason": "captions API: HTTP 400: bad"}, "b": {"ok": True, "reason": None}}),
        ({"frames": 2, "clips": 0, "captioned": 1, "sent": 1, "cached": 0,
          "failed": {"not sent: captions.max_items (5) reached": 1}, "tokens": {"prompt": 10, "completion": 2, "total": 12}},
         {"c": {"ok": True, "reason": None}}),
    ]):
        write_parquet(tmp_path / f"captions{n}.parquet", CAPTION_SCHEMA.empty_table(),
                      {"captions": record, "video_outcomes": outcomes, "seconds": 1.0})
    VIDEO.write(tmp_path / "audio.parquet", VIDEO.table([{"video_id": v, "kept": True} for v in "abc"]),
                {"audio": {"videos": 3, "transcribed": 1, "no_audio": 2, "failed": 0, "segments": 4}})
    from video_miner.privacy import PRIVACY_FIELDS

    for n, record in enumerate([{"frames": 3, "frames_with_regions": 1, "regions": 2, "unreadable": 0},
                                {"frames": 2, "frames_with_regions": 2, "regions": 2, "unreadable": 1}]):
        FRAME.write(tmp_path / f"privacy{n}.parquet", FRAME.table([], *PRIVACY_FIELDS),
                    {"privacy": {**record, "classes": ["face"]}, "seconds": 0.5})
    tables = {"download": [tmp_path / "download.parquet"], "audio": [tmp_path / "audio.parquet"],
              "captions": [tmp_path / "captions0.parquet", tmp_path / "captions1.parquet"],
              "privacy": [tmp_path / "privacy0.parquet", tmp_path / "privacy1.parquet"]}
    summary = summarize_files(tables, [], 0, tmp_path / "s.json", tmp_path / "s.tsv")
    assert summary["captions"] == {"frames": 5, "clips": 1, "captioned": 4, "sent": 5, "cached": 0,
                                   "failed": {"captions API: HTTP 400: bad": 1,
                                              "not sent: captions.max_items (5) reached": 1},
                                   "tokens": {"prompt": 40, "completion": 8, "total": 48}}
    assert summary["audio"] == {"videos": 3, "transcribed": 1, "no_audio": 2, "failed": 0, "segments": 4}
    # privacy: the frames checked in the funnel, its own section
    assert summary["privacy"] == {"frames": 5, "frames_with_regions": 3, "regions": 4, "unreadable": 1}
    assert [(s["stage"], s["count"]) for s in summary["funnel"]] == [("download", 3), ("audio", 3), ("captions", 4),
                                                                     ("privacy", 5)]
    status = pd.read_csv(tmp_path / "s.tsv", sep="\t").set_index("video_id")
    assert status.loc["a", ["status", "failed_stage", "reason"]].tolist() == ["failed", "captions",
                                                                             "captions API: HTTP 400: bad"]
    assert status.loc["b", "status"] == status.loc["c", "status"] == "complete"
    plot_report({k: str(tmp_path / f"{k}.png") for k in ("funnel", "scores", "detections")}, summary, None, [], [])
    assert (tmp_path / "funnel.png").stat().st_size > 0


def test_an_exception_that_ends_a_job_is_in_its_log_in_one_line(tmp_path):
    """Snakemake shows a script's stderr on its console only: the job's log gets the
    exception (the traceback, and one line the summary quotes)."""
    import subprocess
    import sys

    from video_miner.logs import job_error

    log = tmp_path / "job.log"
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from video_miner.logs import log_to_file\n"
              "log_to_file(%r)\n"
              "raise RuntimeError('model org/m is not in the local cache: run fetch-models\\nsecond line')\n"
              % (str(Path(__file__).resolve().parents[1]), str(log)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in log.read_text()
    assert job_error(log) == "RuntimeError: model org/m is not in the local cache: run fetch-models"
    assert job_error(tmp_path / "missing.log") is None
