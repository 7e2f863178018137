"""Shot detection frames/s per backend beside decoding alone, on the same video in the
same run; and the decode passes each video costs (``video_miner.video.DECODE_PASSES``).

The video: ``video_miner.synth.shot_test_frames`` (hard cuts, a flash, a dissolve) at
640x360, repeated to 60 s, H.264 at 25 fps (cached in ~/.cache/video-miner-bench/).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "video-miner-bench"


def video() -> Path:
    from video_miner.synth import encode_video, shot_test_frames

    path = CACHE / "shots_640x360_60s.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        frames, _ = shot_test_frames(640, 360)
        encode_video(path, (frames * 8)[:1500], fps=25)
    return path


def run(repeats: int = 1) -> list[dict]:
    import torch

    from video_miner.shots import ShotSettings, decode_pass, make_detector
    from video_miner.video import DECODE_PASSES

    path = video()
    threads = torch.get_num_threads()
    detectors = {name: make_detector(ShotSettings(backend=name), threads=threads).setup()
                 for name in ("transnetv2", "content", "adaptive")}

    def timed(which) -> tuple[float, int]:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            decoded, _ = decode_pass(path, which, with_brightness=bool(which))
            times.append(time.perf_counter() - started)
        return statistics.median(times), decoded.decoded

    alone, frames = timed([])
    rows = []
    for name, detector in detectors.items():
        DECODE_PASSES.clear()
        seconds, _ = timed([detector])
        passes = DECODE_PASSES[str(path)] / repeats
        rows.append({"measure": f"shots, {name}, frames/s (640x360 H.264, CPU)", "value": frames / seconds,
                     "baseline": "decode alone (same pass, no detector)", "baseline_value": frames / alone,
                     "ratio": alone / seconds, "goal": "<= 2 decode passes per video", "met": passes <= 2,
                     "detail": f"{frames} frames in {seconds:.1f} s vs decode alone {alone:.2f} s; "
                               f"{passes:g} decode pass per video; torch threads {threads}"
                               + ("; 48x27 input, windows of 100 frames, one per forward" if name == "transnetv2"
                                  else "; frames downscaled to 256-384 px wide in the decoder")})
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(row)
