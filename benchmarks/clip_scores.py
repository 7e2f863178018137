"""The clip branch per video-minute on CPU beside decoding alone, in the same run: each
score stage alone, the four together (one decode pass), and shots + the four scores
(the whole branch before the export: two decode passes per video); and the decode
passes each video costs (``video_miner.video.DECODE_PASSES``).

The video: ``video_miner.synth.score_test_frames`` (a pan, a static shot, one under
burned-in text, one with a flash: 2 s each) at 640x360, repeated to 60 s, H.264 at 25
fps with B-frames (cached in ~/.cache/video-miner-bench/): 30 clips of 2 s. The
aesthetic model is the tiny random-weight CLIP (no hub here): its row times the
pipeline around the model, not ViT-L/14 (about 80 GFLOPs per frame: run it where
a GPU is).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "video-miner-bench"
SECONDS, FPS = 60, 25


def video() -> Path:
    from video_miner.synth import encode_video, score_test_frames

    path = CACHE / "clip_scores_640x360_60s.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        frames, _ = score_test_frames(640, 360)
        encode_video(path, (frames * 8)[: SECONDS * FPS], fps=FPS)
    return path


def _clips(path: Path):
    import pandas as pd

    rows = [{"video_id": "v", "clip_id": f"v-{a:06d}", "start_frame": a, "end_frame": a + 50, "start_s": a / FPS,
             "end_s": (a + 50) / FPS} for a in range(0, SECONDS * FPS, 50)]
    videos = pd.DataFrame({"video_id": ["v"], "file": [str(path)], "location": ["bench"],
                           "filesize": [path.stat().st_size], "duration_s": [float(SECONDS)]})
    return pd.DataFrame(rows), videos


def run(repeats: int = 1) -> list[dict]:
    import torch

    from video_miner.clipscores import ScoreSettings, score_clips
    from video_miner.defaults import section_defaults
    from video_miner.shots import ShotSettings, decode_pass, detect_shots, make_detector
    from video_miner.tiny_models import build_clip
    from video_miner.video import DECODE_PASSES

    path = video()
    clips, videos = _clips(path)
    threads = torch.get_num_threads()
    minutes = SECONDS / 60
    with tempfile.TemporaryDirectory() as tmp:
        model = build_clip(Path(tmp, "clip"))

        def sections(*names, **extra):
            out = {n: {**section_defaults(n), "enabled": True, **extra.get(n, {})} for n in names}
            if "aesthetic" in out:
                out["aesthetic"]["model"] = str(model)
            return out

        def timed(fn) -> tuple[float, int]:
            times, passes = [], 0
            for _ in range(repeats):
                DECODE_PASSES.clear()
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
                passes = DECODE_PASSES[str(path)]
            return statistics.median(times), passes

        alone, _ = timed(lambda: decode_pass(path, [], with_brightness=False))
        cases = {
            "flash": sections("flash"),
            "motion, motion vectors": sections("motion"),
            "motion, DIS optical flow": sections("motion", motion={"backend": "dis"}),
            "ocr (RapidOCR detection, 3 frames per clip)": sections("ocr"),
            "aesthetic (tiny random CLIP, 3 frames per clip)": sections("aesthetic"),
            "all four": sections("flash", "ocr", "motion", "aesthetic"),
        }
        rows = []
        for name, chosen in cases.items():
            settings = ScoreSettings.from_config(chosen, {"device": "cpu"})
            count = 0

            def score():
                nonlocal count
                count += 1  # a fresh cache each time: nothing reused
                score_clips(clips, videos, Path(tmp, f"cache-{name}-{count}"), settings,
                            settings.filters(record_only=True), isolate=False, threads=threads)

            seconds, passes = timed(score)
            separate = sum(r["value"] for r in rows if "DIS" not in r["measure"]) * minutes
            extra = f"; each stage in a pass of its own: {separate / minutes:.3g} (the rows above)" \
                if name == "all four" else ""
            rows.append(_row(f"clip scores, {name}, seconds per video-minute (640x360 H.264, CPU)", seconds / minutes,
                             alone / minutes, passes, f"{len(clips)} clips of 2 s, every clip scored (record_only); "
                             f"{passes} decode pass; torch threads {threads}{extra}"))
        detector = make_detector(ShotSettings(), threads=threads).setup()
        settings = ScoreSettings.from_config(sections("flash", "ocr", "motion", "aesthetic"), {"device": "cpu"})

        def branch():
            detect_shots(path, detector, ShotSettings())
            score_clips(clips, videos, Path(tmp, f"cache-branch-{time.monotonic_ns()}"), settings,
                        settings.filters(record_only=True), isolate=False, threads=threads)

        seconds, passes = timed(branch)
        rows.append(_row("clip branch: shots (TransNetV2) + the four scores, seconds per video-minute (CPU)",
                         seconds / minutes, alone / minutes, passes,
                         f"{passes} decode passes per video (goal <= 2): shots, then the scores"))
    return rows


def _row(measure: str, value: float, alone: float, passes: int, detail: str) -> dict:
    goal = 2 if measure.startswith("clip branch") else 1
    return {"measure": measure, "value": value, "baseline": "decode alone (same video, same run)",
            "baseline_value": alone, "ratio": value / alone,
            "goal": f"<= {goal} decode pass{'es' if goal > 1 else ''} per video",
            "met": passes <= goal, "detail": f"{detail}; decode alone {alone:.2f} s per video-minute"}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(row)
