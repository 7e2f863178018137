"""Extraction checked against the video's own frames: each sampled frame must be the
exact frame (pixels and timestamp) a plain full decode gives at that index."""

import av
import numpy as np
import pytest
from PIL import Image

from pathlib import Path

from video_miner.extract import ExtractOptions, extract_shard, extract_video


def decode_all(path):
    """Ground truth by the simplest possible path: every frame in order."""
    with av.open(str(path)) as container:
        frames = [(f.time, f.key_frame, f.rotation, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    t0 = frames[0][0]
    return [(t - t0, key, rot, rgb) for t, key, rot, rgb in frames]


def expected_positions(truth, options):
    times = [t for t, *_ in truth]
    if options.strategy == "interval":
        positions = list(range(0, len(truth), options.every_n_frames))
    elif options.strategy == "keyframe":
        positions = [i for i, (_, key, *_) in enumerate(truth) if key]
    else:
        positions, k = [], 0
        while k * options.every_seconds <= times[-1] + 1e-9:
            first = next(i for i, t in enumerate(times) if t >= k * options.every_seconds - 1e-6)
            if first not in positions:
                positions.append(first)
            k += 1
    return positions[: options.max_frames] if options.max_frames else positions


def assert_exact_frames(result, truth, options):
    assert result.status == "ok", result.reason
    assert [r["frame_index"] for r in result.rows] == expected_positions(truth, options)
    for row in result.rows:
        t, key, rotation, rgb = truth[row["frame_index"]]
        assert row["timestamp_s"] == pytest.approx(t, abs=1e-6)
        assert row["keyframe"] == key
        expected = np.rot90(rgb, k=(rotation or 0) // 90)
        np.testing.assert_array_equal(np.asarray(Image.open(row["path"])), expected)
        assert (row["height"], row["width"]) == expected.shape[:2]


STRATEGIES = [
    ExtractOptions("interval", every_n_frames=7, image_format="png"),
    ExtractOptions("interval", every_n_frames=1, image_format="png", max_frames=12),
    ExtractOptions("time", every_seconds=0.4, image_format="png"),
    ExtractOptions("time", every_seconds=1.0, image_format="png", max_frames=2),
    ExtractOptions("keyframe", image_format="png"),
]


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "vfr.mp4", "vfr_drops.mp4", "vfr_gap.mp4", "vfr_offset.mp4",
                                  "rotated.mp4", "odd.mp4"])
@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: f"{o.strategy}-{o.every_n_frames}-{o.every_seconds}-{o.max_frames}")
def test_sampled_frames_are_exactly_the_expected_frames(videos, tmp_path, name, options):
    result = extract_video(videos[name], tmp_path / "frames", "vid", options)
    assert_exact_frames(result, decode_all(videos[name]), options)


def test_vfr_sampling_seeks_and_still_finishes(videos, tmp_path):
    # Seeks in this file land on an earlier keyframe; extraction must decode on from
    # there (it used to seek back to the same place forever) and still skip work.
    options = ExtractOptions("time", every_seconds=2.0, image_format="png")
    result = extract_video(videos["vfr_drops.mp4"], tmp_path, "vid", options)
    assert_exact_frames(result, decode_all(videos["vfr_drops.mp4"]), options)
    assert result.frames_decoded < result.frames_in_video, result.frames_decoded


def test_sparse_time_sampling_seeks_instead_of_decoding_everything(videos, tmp_path):
    # 90 frames with a 1 s GOP; one frame every 2 s needs only the GOPs that hold targets.
    options = ExtractOptions("time", every_seconds=2.0, image_format="png")
    result = extract_video(videos["h264.mp4"], tmp_path, "vid", options)
    assert [r["frame_index"] for r in result.rows] == [0, 60]
    assert result.frames_decoded < 45, result.frames_decoded


def test_sparse_sampling_skips_non_reference_frames_far_from_targets(videos, tmp_path):
    # 600 frames, 2 s GOP, B-frames: a target every 30 frames, half of them mid-GOP.
    options = ExtractOptions("time", every_seconds=1.0, image_format="png")
    result = extract_video(videos["long.mp4"], tmp_path / "frames", "vid", options)
    assert len(result.rows) == 20
    assert_exact_frames(result, decode_all(videos["long.mp4"]), options)
    # Seeking alone decodes 286 frames here (keyframe to each mid-GOP target); skipping
    # non-reference frames more than 8 frames before a target brings that to 247.
    assert result.frames_decoded < 270, result.frames_decoded


def test_keyframe_sampling_decodes_only_keyframes(videos, tmp_path):
    result = extract_video(videos["h264.mp4"], tmp_path, "vid", ExtractOptions("keyframe"))
    assert [r["frame_index"] for r in result.rows] == [0, 30, 60]
    assert result.frames_decoded == 3


def test_rotation_metadata_is_applied(videos, tmp_path):
    result = extract_video(videos["rotated.mp4"], tmp_path, "vid", ExtractOptions(every_n_frames=10))
    assert {(r["width"], r["height"]) for r in result.rows} == {(240, 320)}


def test_max_side_downscales_keeping_aspect(videos, tmp_path):
    result = extract_video(videos["h264.mp4"], tmp_path, "vid", ExtractOptions(every_n_frames=30, max_side=160))
    assert {(r["width"], r["height"]) for r in result.rows} == {(160, 120)}
    assert Image.open(result.rows[0]["path"]).size == (160, 120)


@pytest.mark.parametrize("fmt,pil_format", [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_image_formats(videos, tmp_path, fmt, pil_format):
    result = extract_video(videos["h264.mp4"], tmp_path, "vid", ExtractOptions(every_n_frames=45, image_format=fmt))
    assert [Image.open(r["path"]).format for r in result.rows] == [pil_format, pil_format]
    assert all(r["path"].endswith(f".{fmt}") for r in result.rows)


def test_jpeg_quality_changes_size(videos, tmp_path):
    sizes = []
    for quality in (20, 95):
        result = extract_video(videos["h264.mp4"], tmp_path / str(quality), "vid",
                               ExtractOptions(every_n_frames=90, quality=quality))
        sizes.append((tmp_path / str(quality) / "00000000.jpg").stat().st_size)
        assert result.rows[0]["path"].endswith("00000000.jpg")
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize(
    "name,reason",
    [
        ("empty.mp4", "empty file"),
        ("truncated.mp4", "not a readable media file"),
        ("page.html", "not a video: the file is an HTML page"),
        ("does-not-exist.mp4", "cannot open file"),
    ],
)
def test_unusable_files_fail_with_a_reason(videos, tmp_path, name, reason):
    result = extract_video(videos[name], tmp_path, "vid", ExtractOptions())
    assert result.status == "failed" and reason in result.reason
    assert result.rows == []


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf\n  <!DOCTYPE html>\n<html><body>Sign in</body></html>",
         "not a video: the file is an HTML page"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "not a video: the file is an XML document"),
        (b'{"error": {"code": 403}}', "not a video: the file is JSON"),
        ("Zugriff verweigert \u2013 bitte anmelden\n".encode(), "not a video: the file is plain text"),
        (bytes(range(256)) * 4, "not a readable media file: Invalid data found when processing input"),
        (b"\0" * 4096, "not a readable media file: Invalid data found when processing input"),
    ],
)
def test_a_file_that_is_no_media_file_says_what_it_is(tmp_path, content, reason):
    from video_miner.video import VideoError, open_video

    (tmp_path / "clip.mp4").write_bytes(content)
    with pytest.raises(VideoError) as info:
        open_video(tmp_path / "clip.mp4")
    assert str(info.value) == reason


def test_audio_only_file_fails_with_a_reason(videos, tmp_path):
    result = extract_video(videos["audio.m4a"], tmp_path / "f", "vid", ExtractOptions())
    assert result.status == "failed" and "no video stream" in result.reason


def test_truncated_but_readable_file_keeps_what_decodes(videos, tmp_path):
    result = extract_video(videos["truncated_faststart.mp4"], tmp_path, "vid", ExtractOptions(every_n_frames=5))
    assert result.status == "ok"
    assert 0 < len(result.rows) < 12
    assert all(Image.open(r["path"]).size == (320, 240) for r in result.rows)


def test_shard_table_follows_the_contract_and_records_each_video(videos, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    from video_miner.tables import video_outcomes
    from video_miner.tables.frame import FRAME

    files = [str(videos["h264.mp4"]), str(videos["audio.m4a"])]
    shard = pd.DataFrame({"video_id": ["good", "bad"], "file": files, "location": files, "filesize": [1, 2]})
    table, record = extract_shard(shard, tmp_path / "frames", tmp_path / "cache", ExtractOptions(every_n_frames=30))
    FRAME.write(tmp_path / "t.parquet", table, record)
    written = pq.read_table(tmp_path / "t.parquet")
    assert written.column_names == ["video_id", "frame_index", "frame_id", "timestamp_s", "width", "height", "path",
                                    "kept", "reason", "keyframe", "clip_id", "image"]
    assert written.column("frame_index").to_pylist() == [0, 30, 60]
    assert written.column("frame_id").to_pylist() == ["good/00000000", "good/00000030", "good/00000060"]
    assert all(Path(p).is_file() and Path(p).parent == tmp_path / "frames" / "good" for p in written.column("path").to_pylist())
    outcomes = video_outcomes(tmp_path / "t.parquet")
    assert outcomes["good"]["ok"] and outcomes["good"]["frames_in_video"] == 90
    assert not outcomes["bad"]["ok"] and "no video stream" in outcomes["bad"]["reason"]
    assert list(tmp_path.glob(".*tmp*")) == []  # no temp files left behind


def test_a_rerun_of_a_shard_reuses_finished_videos_and_redoes_changed_settings(videos, tmp_path, monkeypatch):
    import pandas as pd

    from video_miner import extract as extraction

    files = [str(videos["h264.mp4"]), str(videos["vp9.webm"])]
    shard = pd.DataFrame({"video_id": ["a", "b"], "file": files, "location": files, "filesize": [1, 2]})
    first, _ = extract_shard(shard, tmp_path / "out1", tmp_path / "cache", ExtractOptions(every_n_frames=10))
    calls_file = tmp_path / "calls.txt"  # the work runs in worker processes: they log to a file
    calls_file.touch()
    real = extraction.extract_video

    def counted(*args, **kwargs):
        with calls_file.open("a") as fh:
            fh.write(args[2] + "\n")
        return real(*args, **kwargs)

    def calls():
        return sorted(calls_file.read_text().split())

    monkeypatch.setattr(extraction, "extract_video", counted)
    again, _ = extract_shard(shard, tmp_path / "out2", tmp_path / "cache", ExtractOptions(every_n_frames=10))
    assert calls() == []  # both videos came from the cache
    assert again.drop_columns(["path"]).equals(first.drop_columns(["path"]))
    changed, _ = extract_shard(shard, tmp_path / "out3", tmp_path / "cache", ExtractOptions(every_n_frames=20))
    assert calls() == ["a", "b"]  # other settings: extracted again
    assert changed.column("frame_index").to_pylist()[:3] == [0, 20, 40]
    refetched = shard.assign(filesize=[1, 3])  # b arrived again, another file: b only is extracted again
    extract_shard(refetched, tmp_path / "out4", tmp_path / "cache", ExtractOptions(every_n_frames=20))
    assert calls() == ["a", "b", "b"]


def test_one_video_that_raises_costs_only_itself(videos, tmp_path, monkeypatch):
    import pandas as pd

    from video_miner import extract as extraction

    real = extraction.extract_video

    def explode_on_b(path, out_dir, video_id, options, clips=()):
        if video_id == "b":
            raise RuntimeError("decoder gave up")
        return real(path, out_dir, video_id, options, clips)

    monkeypatch.setattr(extraction, "extract_video", explode_on_b)
    files = [str(videos["h264.mp4"]), str(videos["vp9.webm"])]
    shard = pd.DataFrame({"video_id": ["a", "b"], "file": files, "location": files, "filesize": [1, 2]})
    table, record = extract_shard(shard, tmp_path / "out", tmp_path / "cache", ExtractOptions(), workers=2)
    assert set(table.column("video_id").to_pylist()) == {"a"}
    assert record["video_outcomes"]["b"] == {"status": "failed", "reason": "RuntimeError: decoder gave up",
                                             "frames_in_video": 0, "frames_decoded": 0, "decode_errors": 0,
                                             "seconds": 0.0, "ok": False, "frames_extracted": 0}
    monkeypatch.setattr(extraction, "extract_video", real)
    table, record = extract_shard(shard, tmp_path / "out2", tmp_path / "cache", ExtractOptions())
    assert record["video_outcomes"]["b"]["ok"]  # not cached: the rerun tried it again


def test_packed_frames_match_loose_ones_and_a_partly_cached_rerun_packs_every_frame(videos, tmp_path):
    """storage tar: the same table apart from the paths, the same bytes per frame, several
    tars above the size; a rerun with one video cached and one new still packs both."""
    import pandas as pd

    from video_miner import framestore

    files = [str(videos["h264.mp4"]), str(videos["vp9.webm"])]
    shard = pd.DataFrame({"video_id": ["a", "b"], "file": files, "location": files, "filesize": [1, 2]})
    loose, loose_record = extract_shard(shard, tmp_path / "loose", tmp_path / "c1", ExtractOptions(every_n_frames=10))
    tar_options = ExtractOptions(every_n_frames=10, storage="tar", tar_mb=0.05)
    packed, packed_record = extract_shard(shard, tmp_path / "packed", tmp_path / "c2", tar_options)
    assert packed.drop_columns(["path"]).equals(loose.drop_columns(["path"]))
    assert packed_record["options"] == loose_record["options"]
    paths = packed.column("path").to_pylist()
    assert all(framestore.is_packed(p) for p in paths)
    assert [framestore.read_bytes(p) for p in paths] == [Path(p).read_bytes() for p in loose.column("path").to_pylist()]
    assert len(framestore.tar_files(tmp_path / "packed")) > 1
    assert {p.suffix for p in (tmp_path / "packed").iterdir()} == {".tar", ".json"}  # no loose frames
    assert not any(p.is_dir() for p in (tmp_path / "c2").iterdir())  # one tar per video in the cache
    (tmp_path / "c2" / "b.json").unlink()  # b not cached (a killed job): extracted again, a reused
    (tmp_path / "c2" / "a.tar").unlink()  # a's cached tar deleted by hand: extracted again too
    again, _ = extract_shard(shard, tmp_path / "packed2", tmp_path / "c2", tar_options)
    assert [framestore.read_bytes(p) for p in again.column("path").to_pylist()] == [
        framestore.read_bytes(p) for p in paths]
