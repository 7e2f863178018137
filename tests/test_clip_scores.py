"""Clip scores on a video of known shots (a moving one, a static one, one under large
burned-in text, one with a 2-frame white flash), scored in one decode pass; the
decisions on controlled scores; the LAION head's arithmetic; the shard job's cache and
bad videos; calibration; the live progress records."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from video_miner.clipscores import (
    RULES,
    ScoreFilter,
    ScoreSettings,
    calibrate,
    calibration_sample,
    cascade,
    clip_progress,
    clip_scores_shard,
    polygon_area,
    score_clips,
    stage_tables,
    write_calibration,
)
from video_miner.aesthetic import aesthetic_head, load_head
from video_miner.defaults import section_defaults
from video_miner.flash import flash_ratio
from video_miner.synth import encode_video, score_test_frames
from video_miner.video import DECODE_PASSES

STAGES = ("flash", "ocr", "motion", "aesthetic")


@pytest.fixture(scope="session")
def score_video(tmp_path_factory):
    """320x180, 25 fps, 8 s: the moving, static, text and flash shots of 2 s each, as
    H.264 (B-frames, 2 s GOP) and as VP9 (no motion vectors: optical flow instead)."""
    frames, truth = score_test_frames(320, 180)
    root = tmp_path_factory.mktemp("scores")
    encode_video(root / "shots.mp4", frames, fps=25, gop=50)
    encode_video(root / "shots.webm", frames, fps=25, codec="libvpx-vp9",
                 options={"deadline": "realtime", "cpu-used": "8"})
    return root, truth


@pytest.fixture(scope="session")
def tiny_clip(tiny_models):
    """A tiny random CLIP with its random LAION head (aesthetic_head.safetensors)."""
    return tiny_models["clip"]


def sections(tiny_clip, **changes):
    out = {s: {**section_defaults(s), "enabled": True} for s in STAGES}
    out["aesthetic"].update(model=str(tiny_clip), min=-1e9)  # random weights: keep every clip by default
    for stage, values in changes.items():
        out[stage].update(values)
    return out


def shard(root, truth, name="shots.mp4", video_id="v"):
    clips = pd.DataFrame([{"video_id": video_id, "clip_id": f"{video_id}-{a:06d}", "start_frame": a, "end_frame": b,
                           "start_s": a / 25, "end_s": b / 25} for a, b in truth.shots.values()])
    videos = pd.DataFrame({"video_id": [video_id], "file": [str(root / name)], "location": [name],
                           "filesize": [(root / name).stat().st_size], "duration_s": [8.0]})
    return clips, videos


def by_shot(scores, truth):
    starts = {a: name for name, (a, _) in truth.shots.items()}
    return scores.assign(shot=scores["start_frame"].map(starts)).set_index("shot")


@pytest.fixture(scope="session")
def recorded(score_video, tiny_clip, tmp_path_factory):
    """Every stage scores every clip (record_only), in this process so the decoder opens
    are counted here."""
    root, truth = score_video
    clips, videos = shard(root, truth)
    settings = ScoreSettings.from_config(sections(tiny_clip), {"device": "cpu"})
    DECODE_PASSES.clear()
    scores, outcomes = score_clips(clips, videos, tmp_path_factory.mktemp("cache"), settings,
                                   settings.filters(record_only=True), isolate=False)
    return by_shot(scores, truth), outcomes, dict(DECODE_PASSES)


def test_each_score_tells_its_shot_apart_in_one_decode_pass(score_video, recorded):
    root, truth = score_video
    scores, outcomes, passes = recorded
    assert passes == {str(root / "shots.mp4"): 1} and outcomes["v"]["decode_passes"] == 1
    assert outcomes["v"]["frames_decoded"] == 200
    # burned-in text: the largest box covers about 15% of the frame; RapidOCR finds no text elsewhere
    assert scores["text_area"].idxmax() == "text" and scores.loc["text", "text_area"] > 0.1
    assert scores.drop("text")["text_area"].max() < 0.02
    # static: the least motion (sensor noise only), far below the pans
    assert scores["motion"].idxmin() == "static"
    assert scores.loc["static", "motion"] < 0.0002 < 0.001 < scores.drop("static")["motion"].min()
    assert (scores["motion_backend"] == "motion_vectors").all()
    # the flash: 2 of the shot's 50 frames; no other shot has one
    assert scores.loc["flash", "flash"] == pytest.approx(2 / 50) and (scores.drop("flash")["flash"] == 0).all()
    # the random CLIP scores every frame of every clip (min over 3 frames)
    assert scores["aesthetic"].notna().all() and (scores["aesthetic_frames"].map(len) == 3).all()
    assert scores.loc["moving", "aesthetic"] == pytest.approx(min(scores.loc["moving", "aesthetic_frames"]))


def test_the_filters_drop_the_flash_the_text_and_the_static_shot_in_order(recorded):
    scores, _, _ = recorded
    settings = ScoreSettings.from_config({s: {**section_defaults(s), "enabled": True} for s in STAGES})
    tables = stage_tables(scores.reset_index(drop=True), settings.filters())
    dropped = {name: dict(zip(t.loc[~t["kept"], "clip_id"], t.loc[~t["kept"], "reason"])) for name, t in tables.items()}
    ids = scores["clip_id"].to_dict()
    assert dropped["flash"] == {ids["flash"]: "flash frames are 4.0% of the clip (more than flash.max_ratio 0)"}
    assert list(dropped["ocr"]) == [ids["text"]] and dropped["ocr"][ids["text"]].startswith("text covers 1")
    assert list(dropped["motion"]) == [ids["static"]] and "below motion.min 0.0005" in dropped["motion"][ids["static"]]
    # each stage's table holds the clips the one before kept (the table contract)
    assert [len(t) for t in tables.values()] == [4, 3, 2, 1]
    # record_only: scored, every clip kept, every stage sees every clip
    kept_all = stage_tables(scores.reset_index(drop=True), settings.filters(record_only=True))
    assert all(len(t) == 4 and t["kept"].all() and (t["reason"] == "").all() for t in kept_all.values())


def test_optical_flow_backend_and_the_fallback_for_codecs_without_motion_vectors(score_video, tiny_clip, recorded,
                                                                                tmp_path):
    root, truth = score_video
    results = {}
    for name, backend in [("shots.mp4", "dis"), ("shots.webm", "motion_vectors")]:
        clips, videos = shard(root, truth, name)
        settings = ScoreSettings.from_config({"motion": sections(tiny_clip, motion={"backend": backend})["motion"]})
        scores, _ = score_clips(clips, videos, tmp_path / name, settings, settings.filters(record_only=True),
                                isolate=False)
        results[name] = by_shot(scores, truth)
    for scores in results.values():
        assert (scores["motion_backend"] == "dis").all()  # VP9 exports no vectors: DIS instead
        assert scores["motion"].idxmin() == "static" and scores.loc["static", "motion"] < 0.0005
        assert scores.drop("static")["motion"].min() > 0.001
    # the same units: on the pans, DIS agrees with the motion vectors within a fifth (H.264 and VP9 alike)
    vectors = recorded[0]["motion"].drop("static")
    for scores in results.values():
        assert ((scores["motion"].drop("static") - vectors).abs() / vectors < 0.2).all(), scores["motion"]


def test_clips_far_apart_are_reached_by_seeking_with_the_same_scores(score_video, tiny_clip, tmp_path, monkeypatch):
    """A calibration sample's clips lie far apart: the decoder seeks to the keyframe
    before each run of clips instead of decoding the frames between; one decoder, the
    same scores as decoding straight through."""
    frames, truth = score_test_frames(320, 180)
    encode_video(tmp_path / "long.mp4", frames * 4, fps=25, gop=50)  # 32 s, a keyframe every 2 s
    clips, videos = shard(tmp_path, truth, "long.mp4")
    far = clips.assign(start_frame=clips["start_frame"] + [0, 0, 600, 600], end_frame=clips["end_frame"] + [0, 0, 600, 600])
    far["clip_id"] = [f"v-{s:06d}" for s in far["start_frame"]]
    chosen = sections(tiny_clip)
    settings = ScoreSettings.from_config({s: chosen[s] for s in ("flash", "ocr", "motion")})
    results = {}
    for name, gap in [("seek", 250), ("straight", 10**9)]:
        monkeypatch.setattr("video_miner.clipscores.SEEK_GAP", gap)
        DECODE_PASSES.clear()
        scores, outcomes = score_clips(far, videos, tmp_path / name, settings, settings.filters(record_only=True),
                                       isolate=False)
        assert DECODE_PASSES[str(tmp_path / "long.mp4")] == 1
        results[name] = (scores.set_index("clip_id")[["flash", "text_area", "motion"]], outcomes["v"]["frames_decoded"])
    pd.testing.assert_frame_equal(results["seek"][0], results["straight"][0])
    assert results["straight"][1] == 800 and results["seek"][1] <= 101 + 100 + 50  # two runs, each from its keyframe
    assert results["seek"][0]["flash"].tolist() == [0, 0, 0, 0.04]


# --- decisions on controlled scores --------------------------------------------------------


def test_decisions_keep_at_most_or_at_least_and_never_keep_a_missing_score():
    flash = ScoreFilter(RULES["flash"], 0.05)
    assert flash.decide([0.0, 0.05, 0.06, None, math.nan]) == (
        pytest.approx(np.array([True, True, False, False, False])),
        ["", "", "flash frames are 6.0% of the clip (more than flash.max_ratio 0.05)",
         "no frames decoded in the clip", "no frames decoded in the clip"])
    motion = ScoreFilter(RULES["motion"], 0.001)
    kept, reasons = motion.decide([0.001, 0.0009])
    assert kept.tolist() == [True, False] and reasons[1] == "motion 0.0009 is below motion.min 0.001"
    aesthetic = ScoreFilter(RULES["aesthetic"], 4.5, record_only=True)
    assert aesthetic.decide([1.0, None])[0].tolist() == [True, True]
    scores = pd.DataFrame({"clip_id": list("abcd"), "flash": [0.0, 0.2, 0.0, 0.0],
                           "text_area": [0.01, 0.5, 0.3, 0.0], "motion": [0.01, 0.0, 0.01, 0.0]})
    filters = [ScoreFilter(RULES["flash"], 0.0), ScoreFilter(RULES["ocr"], 0.02), ScoreFilter(RULES["motion"], 0.001)]
    tables = cascade(scores, filters)
    assert [t["clip_id"].tolist() for t in tables.values()] == [list("abcd"), list("acd"), list("ad")]
    assert tables["motion"]["kept"].tolist() == [True, False]


def test_brightness_off_the_luma_plane_matches_the_shot_stages(score_video):
    """The flash stage reads mean luma off the decoded plane; the shot stage measures it on
    its 48x27 RGB frames: the same quantity within 2 levels (a flash jumps by 60)."""
    import av

    from video_miner.flash import brightness, frame_brightness, small_frame

    root, truth = score_video
    with av.open(str(root / "shots.mp4")) as container:
        pairs = [(frame_brightness(f), brightness(small_frame(f))) for f in container.decode(video=0)]
    plane, small = np.array(pairs).T
    assert np.abs(plane - small).max() < 2.5 and plane[truth.flash[0]] > 250


def test_flash_ratio_counts_flash_frames_of_the_clip():
    luma = np.full(50, 90.0)
    luma[[20, 21]] = 250
    assert flash_ratio(luma) == pytest.approx(0.04)
    assert flash_ratio(np.full(10, 90.0)) == 0 and math.isnan(flash_ratio([]))
    assert polygon_area([[0, 0], [4, 0], [4, 3], [0, 3]]) == 12


# --- the LAION head -----------------------------------------------------------------------------


def test_aesthetic_head_arithmetic_on_a_hand_computed_input():
    """The head is the LAION MLP: five linear layers, no activation, dropout off in eval.
    With one path of weights through it, the score of the L2-normalised (3, 4) is
    -1 * (1 * (0.5 * (3 * (2 * 0.6)))) + 7 = 5.2."""
    import torch

    head = aesthetic_head(2).eval()
    assert [type(m).__name__ for m in head.layers] == ["Linear", "Dropout", "Linear", "Dropout", "Linear", "Dropout",
                                                       "Linear", "Linear"]
    assert [(m.in_features, m.out_features) for m in head.layers if isinstance(m, torch.nn.Linear)] == [
        (2, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    with torch.no_grad():
        for index, weight in zip((0, 2, 4, 6, 7), (2.0, 3.0, 0.5, 1.0, -1.0)):
            head.layers[index].weight.zero_()
            head.layers[index].bias.zero_()
            head.layers[index].weight[0, 0] = weight
        head.layers[7].bias[0] = 7.0
        embedding = torch.tensor([[3.0, 4.0]])
        normalised = embedding / embedding.norm(dim=-1, keepdim=True)  # (0.6, 0.8)
        assert head(normalised).item() == pytest.approx(5.2)
        assert head(normalised).item() == head(normalised).item()  # dropout is off


def test_the_head_loads_as_published_and_checks_the_embedding_size(tmp_path):
    import torch

    head = aesthetic_head(24)
    torch.save(head.state_dict(), tmp_path / "sac+logos+ava1-l14-linearMSE.pth")  # LAION's format: layers.N.*
    loaded = load_head(tmp_path / "sac+logos+ava1-l14-linearMSE.pth", 24)
    x = torch.randn(3, 24)
    assert torch.allclose(loaded(x), head.eval()(x)) and not loaded.training
    with pytest.raises(ValueError, match="takes 24-dim embeddings, the CLIP model gives 768"):
        load_head(tmp_path / "sac+logos+ava1-l14-linearMSE.pth", 768)


# --- the shard job: bad videos, the cache, thresholds ----------------------------------------------


def test_shard_job_gives_a_bad_video_its_reason_and_rescoring_needs_no_decoding(score_video, tiny_clip, tmp_path,
                                                                               monkeypatch):
    root, truth = score_video
    (tmp_path / "bad.mp4").write_bytes(b"")
    clips, videos = shard(root, truth)
    bad_clips, bad = shard(tmp_path, truth, "bad.mp4", video_id="bad")
    clips, videos = pd.concat([clips, bad_clips.head(1)]), pd.concat([videos, bad])
    settings = ScoreSettings.from_config(sections(tiny_clip), {"device": "cpu"})
    tables, records = clip_scores_shard(clips, videos, tmp_path / "cache", settings, workers=2)
    first = tables["flash"].set_index("clip_id")
    assert not first.loc["bad-000000", "kept"] and first.loc["bad-000000", "reason"] == "empty file"
    assert records["flash"]["video_outcomes"]["bad"]["ok"] is False
    assert "bad" not in records["ocr"]["video_outcomes"]
    assert records["flash"]["video_outcomes"]["v"]["decode_passes"] == 1
    assert [len(t) for t in tables.values()] == [5, 3, 2, 1]
    # Every video's record is on disk with what each stage scored and kept (status reads them).
    progress = clip_progress([tmp_path / "cache"], now=json.loads((tmp_path / "cache" / "v.json").read_text())[
        "record"]["finished_at"])
    assert progress["videos"] == 2 and progress["videos_done"] == 1
    assert progress["stages"] == {"flash": {"scored": 4, "kept": 3}, "ocr": {"scored": 3, "kept": 2},
                                  "motion": {"scored": 2, "kept": 1}, "aesthetic": {"scored": 1, "kept": 1}}
    assert progress["clips_per_s"] == pytest.approx(4 / 60)

    from video_miner.clipscores import VideoScorer

    decoded = []
    score = VideoScorer.score
    monkeypatch.setattr(VideoScorer, "score",
                        lambda self, path, *a, **k: decoded.append(path) or score(self, path, *a, **k))
    # A tighter threshold is decided from the cached scores; nothing is decoded again.
    tighter = ScoreSettings.from_config(sections(tiny_clip, motion={"min": 0.01}), {"device": "cpu"})
    tables, _ = clip_scores_shard(clips, videos, tmp_path / "cache", tighter, isolate=False)
    assert [len(t) for t in tables.values()] == [5, 3, 2, 0] and not tables["motion"]["kept"].any()
    assert decoded == []  # the empty file's outcome is cached too (as in shots)
    # A looser one lets the flash shot reach text detection, which it was never given: decoded again.
    looser = ScoreSettings.from_config(sections(tiny_clip, flash={"max_ratio": 0.1}), {"device": "cpu"})
    tables, _ = clip_scores_shard(clips, videos, tmp_path / "cache", looser, isolate=False)
    assert [len(t) for t in tables.values()] == [5, 4, 3, 2] and decoded == [str(root / "shots.mp4")]


def test_a_decoder_crash_costs_only_its_video(score_video, tmp_path, monkeypatch):
    """A segfault in the worker (the library's fault hook, a real signal) fails that video
    at the first stage with the reason; the other video is scored."""
    from video_miner.workers import FAULTS_ENV

    root, truth = score_video
    clips, videos = shard(root, truth)
    other_clips, other = shard(root, truth, video_id="w")
    monkeypatch.setenv(FAULTS_ENV, "clip_scores:w=crash")
    settings = ScoreSettings.from_config({"flash": {**section_defaults("flash"), "enabled": True}})
    tables, records = clip_scores_shard(pd.concat([clips, other_clips]), pd.concat([videos, other]),
                                        tmp_path / "cache", settings)
    flash = tables["flash"].set_index("clip_id")
    assert (flash.loc[other_clips["clip_id"], "reason"] == "decoder crashed (SIGSEGV, signal 11)").all()
    assert records["flash"]["video_outcomes"]["w"]["ok"] is False and records["flash"]["video_outcomes"]["v"]["ok"]
    assert flash.loc[clips["clip_id"], "flash"].notna().all()


# --- calibration ----------------------------------------------------------------------------------


def test_calibration_drops_nothing_and_writes_every_quantile(recorded, tiny_clip, tmp_path):
    scores, _, _ = recorded
    sample = calibration_sample(pd.concat([scores] * 3, ignore_index=True).assign(
        clip_id=[f"c{i}" for i in range(12)], video_id=[f"v{i % 3}" for i in range(12)]), 5, seed=1)
    again = calibration_sample(pd.concat([scores] * 3, ignore_index=True).assign(
        clip_id=[f"c{i}" for i in range(12)], video_id=[f"v{i % 3}" for i in range(12)]).iloc[::-1], 5, seed=1)
    assert len(sample) == 5 and sample["clip_id"].tolist() == again["clip_id"].tolist()
    settings = ScoreSettings.from_config(sections(tiny_clip, aesthetic={"min": 4.5}), {"device": "cpu"})
    quantiles = [0.1, 0.5, 0.9]
    result = calibrate(scores.reset_index(drop=True), settings, quantiles, keep_rate=0.75)
    assert result["clips"] == result["clips_scored"] == 4
    assert set(result["quantiles"]) == {"flash", "text_area", "motion", "aesthetic"}
    assert all(list(q) == ["0.1", "0.5", "0.9"] and None not in q.values() for q in result["quantiles"].values())
    assert result["quantiles"]["text_area"]["0.9"] == pytest.approx(np.quantile(scores["text_area"], 0.9))
    motion = result["suggested"]["motion"]
    assert motion["key"] == "motion.min" and motion["keeps"] == 0.75  # the static shot falls below
    assert result["suggested"]["aesthetic"]["configured_keeps"] == 0  # random weights: far below 4.5
    assert 0 < result["joint_keeps"] <= min(s["keeps"] for s in result["suggested"].values())
    out = {"quantiles": tmp_path / "quantiles.json", "scores": tmp_path / "scores.parquet",
           "histograms": tmp_path / "histograms.png"}
    write_calibration(out, scores.reset_index(drop=True), result, settings)
    written = pd.read_parquet(out["scores"])
    assert len(written) == 4 and written["kept"].all()  # nothing dropped
    assert json.loads(out["quantiles"].read_text())["quantiles"] == result["quantiles"]
    assert out["histograms"].read_bytes().startswith(b"\x89PNG")
