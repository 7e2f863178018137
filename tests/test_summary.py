import json

import pandas as pd

from video_miner.extract import write_manifest
from video_miner.summary import STATUS_COLUMNS, summarize_files


def test_summary_and_status_table_from_result_files(tmp_path):
    records = [
        {"video_id": "a", "source": "url", "url": "https://x/a.mp4", "status": "ok", "title": "A",
         "duration": 3.0, "download_seconds": 1.5},
        {"video_id": "b", "source": "url", "url": "https://x/b.mp4", "status": "failed",
         "reason": "HTTP Error 503", "transient": True, "download_seconds": 4.0},
        {"video_id": "c", "source": "local", "path": "clips/c.mp4", "status": "ok", "download_seconds": 0.01},
    ]
    extractions = [
        {"status": "ok", "frames_in_video": 90, "frames_extracted": 3, "decode_errors": 0, "seconds": 0.5},
        {"status": "skipped", "reason": "download failed", "frames_extracted": 0, "seconds": 0},
        {"status": "failed", "reason": "no video stream (audio-only or not a video)", "seconds": 0.1},
    ]
    record_paths, manifest_paths = [], []
    for record, extraction in zip(records, extractions):
        path = tmp_path / f"{record['video_id']}.info.json"
        path.write_text(json.dumps(record))
        record_paths.append(path)
        manifest = tmp_path / f"{record['video_id']}.parquet"
        write_manifest(manifest, [], extraction)
        manifest_paths.append(manifest)
    rejected = [{"input": "ftp://x", "origin": "urls[3]", "reason": "only http and https URLs are accepted"}]
    summary = summarize_files(record_paths, manifest_paths, rejected, 2, tmp_path / "s.json", tmp_path / "s.tsv")

    assert summary["videos"] == {"total": 3, "ok": 1, "failed": 2, "duplicates_in_input": 2, "rejected_inputs": 1}
    assert summary["failed_videos"] == [
        {"video_id": "b", "location": "https://x/b.mp4", "stage": "download", "reason": "HTTP Error 503",
         "retryable": True},
        {"video_id": "c", "location": "clips/c.mp4", "stage": "extract",
         "reason": "no video stream (audio-only or not a video)", "retryable": False},
    ]
    assert summary["frames"] == {"in_videos": 90, "extracted": 3, "decode_errors": 0, "passed_filter": None,
                                 "unique": None, "with_detections": None}  # model stages off
    assert summary["stage_seconds"] == {"download": 5.51, "extract": 0.6, "total": 6.11}
    assert json.loads((tmp_path / "s.json").read_text()) == summary

    table = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert table.columns.tolist() == STATUS_COLUMNS
    assert table["status"].tolist() == ["extracted", "failed", "failed"]
    assert table["failed_stage"].fillna("").tolist() == ["", "download", "extract"]
