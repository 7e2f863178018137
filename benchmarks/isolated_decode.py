"""What decoding in a worker process costs the audio and captions stages, beside decoding in
the job's own process, in the same run.

Both stages decode in a forked worker under the limits (a file that hangs or crashes the
decoder costs only its video) and hand the result to the job's process, where the model
is: audio as one float32 array (``.npy``), a clip's frames as raw arrays. The baselines
are the same decodes called in the job's process, as the stages did before.

- audio: a 10-minute 16 kHz AAC track (a tone under 64x48 video, rendered once and cached
  in ~/.cache/video-miner-bench/), through ``transcribe_videos`` with a stand-in
  transcriber that only takes the samples, against ``decode_audio`` alone;
- captions: 8 clips x 4 frames of the 60 s 1080p extraction benchmark video through
  ``decode_clip_frames`` + reading the arrays back, against ``frames_at`` per clip.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "video-miner-bench"
AUDIO_SECONDS = 600


def audio_video() -> Path:
    import numpy as np

    from video_miner.synth import encode_video

    path = CACHE / f"tone_{AUDIO_SECONDS}s.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        frame = np.zeros((48, 64, 3), np.uint8)
        encode_video(path, (frame for _ in range(AUDIO_SECONDS)), fps=1, tone_hz=440)
    return path


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def audio_row(repeats: int) -> dict:
    import shutil

    from video_miner.audio import AudioSettings, decode_audio, decode_isolation, transcribe_videos
    from video_miner.workers import Limits

    path = str(audio_video())

    class TakeSamples:
        def transcribe(self, pcm):
            return []

    def isolated():
        with tempfile.TemporaryDirectory() as tmp:
            transcribe_videos({"v": path}, tmp, AudioSettings(), TakeSamples,
                              isolation=decode_isolation(Limits.from_config({}), {}, {}))
            shutil.rmtree(tmp)

    base = _median(lambda: decode_audio(path), repeats)
    value = _median(isolated, repeats)
    minutes = AUDIO_SECONDS / 60
    overhead = max(0.0, value - base) / minutes
    # What counts is the cost beside transcription, which takes seconds per minute of sound
    # even on a GPU: the added seconds per minute, not the ratio to a bare decode.
    return {"measure": "audio: seconds per minute of sound the worker process + hand-over add to its decode",
            "value": overhead, "baseline": "decode_audio in the job's process, seconds per minute",
            "baseline_value": base / minutes, "ratio": value / base, "goal": "<= 0.1 s/min", "met": overhead <= 0.1,
            "detail": f"{AUDIO_SECONDS // 60} min AAC track, decoded as a float32 array and handed over as .npy; "
                      "a hung or crashing decoder costs only its video"}


def captions_row(repeats: int) -> dict:
    import pandas as pd

    from extraction import bench_video
    from video_miner.captions import _decoded_images, clip_isolation, clip_items, decode_clip_frames, frames_at
    from video_miner.workers import Limits

    path = str(bench_video())
    clips = pd.DataFrame({"video_id": "v", "clip_id": [f"v-{k}" for k in range(8)],
                          "start_s": [7.0 * k for k in range(8)], "end_s": [7.0 * k + 3 for k in range(8)]})
    items = clip_items(clips, {"v": path}, {"v": ["bench", 1]}, 4)

    def isolated():
        with tempfile.TemporaryDirectory() as tmp:
            decoded = decode_clip_frames(items, Path(tmp), clip_isolation(Limits.from_config({}), {}, {}))
            for files in decoded.values():
                _decoded_images(files)

    base = _median(lambda: [frames_at(path, item.times_s) for item in items], repeats)
    value = _median(isolated, repeats)
    return {"measure": "captions: 8 clips x 4 frames of 1080p decoded in a worker process + hand-over, seconds",
            "value": value, "baseline": "frames_at per clip in the job's process", "baseline_value": base,
            "ratio": value / base, "goal": "<= 1.25x", "met": value / base <= 1.25,
            "detail": "frames handed over as raw arrays (a 1080p PNG takes 0.2-1 s to write)"}


def run(repeats: int = 3) -> list[dict]:
    return [audio_row(repeats), captions_row(repeats)]


if __name__ == "__main__":
    for row in run():
        print(row)
