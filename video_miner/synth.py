"""Synthetic videos from real photos: the demo's inputs and the tests' fixtures.

Scenes are camera moves over scikit-image's bundled photos (pans, zooms, static shots
with sensor-like noise), joined by hard cuts, so every later stage sees what real footage
gives it: near-duplicate runs, repeated scenes, faces (``astronaut``) and a cat
(``chelsea``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, Sequence

import av
import numpy as np
from PIL import Image

from video_miner.fsutil import atomic_path

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat")


def photo(name: str) -> np.ndarray:
    """An RGB uint8 photo shipped with scikit-image."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {PHOTOS}")
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


@dataclass(frozen=True)
class Scene:
    """A camera move over a photo: the view (centre x, centre y, zoom) goes linearly from
    ``start`` to ``end``; zoom 1 shows the largest crop of the output's aspect."""

    photo: str
    seconds: float
    start: tuple[float, float, float] = (0.5, 0.5, 1.0)
    end: tuple[float, float, float] | None = None
    noise: float = 2.0  # std of per-frame noise, like a real sensor's
    text: str | None = None  # burned-in text (a caption, a channel's call to action) on every frame

    def frames(self, width: int, height: int, fps: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
        image = Image.fromarray(photo(self.photo))
        end = self.end or self.start
        count = max(1, round(self.seconds * fps))
        aspect = width / height
        base_w = min(image.width, image.height * aspect)
        for i in range(count):
            a = i / max(1, count - 1)
            cx, cy, zoom = (s + (e - s) * a for s, e in zip(self.start, end))
            crop_w = base_w / zoom
            crop_h = crop_w / aspect
            left = min(max(cx * image.width - crop_w / 2, 0), image.width - crop_w)
            top = min(max(cy * image.height - crop_h / 2, 0), image.height - crop_h)
            view = image.resize((width, height), Image.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
            frame = np.array(view, dtype=np.float32)
            if self.noise:
                frame += rng.standard_normal(frame.shape, dtype=np.float32) * self.noise
            frame = np.clip(frame, 0, 255).astype(np.uint8)
            yield burn_in(frame, self.text) if self.text else frame


def burn_in(frame: np.ndarray, text: str, height_share: float = 0.2) -> np.ndarray:
    """``frame`` with ``text`` drawn over its lower part as burned-in captions are: white
    with a dark outline, letters about ``height_share`` of the frame high (PIL's own
    font: no system font needed)."""
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(frame)
    size = max(8, round(frame.shape[0] * height_share))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=max(1, size // 12))
    x = (frame.shape[1] - (right - left)) // 2 - left
    y = frame.shape[0] - (bottom - top) - frame.shape[0] // 10 - top
    draw.text((x, y), text, font=font, fill=(255, 255, 255), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    return np.asarray(image)


def encode_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25, codec: str = "libx264",
                 gop: int | None = None, options: dict | None = None, rotation: int = 0,
                 times: Sequence[float] | None = None, container_format: str | None = None,
                 container_options: dict | None = None, pix_fmt: str = "yuv420p",
                 tone_hz: float | None = None) -> None:
    """Encode RGB frames to a video file (atomically).

    ``gop`` is the keyframe interval in frames (default 2 s); ``rotation`` writes a display
    matrix as phones do; ``times`` gives per-frame timestamps in seconds for a variable
    frame rate; ``container_options`` such as ``{"movflags": "faststart"}`` go to the muxer;
    ``tone_hz`` adds an AAC audio track (16 kHz mono) of a sine tone as long as the video.
    """
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    suffix = os.path.splitext(str(path))[1]
    with atomic_path(path, suffix=suffix) as tmp:
        # bitexact: no random container ids, so the same frames always give the same bytes
        muxer_options = {"fflags": "+bitexact", **(container_options or {})}
        with av.open(str(tmp), "w", format=container_format, options=muxer_options) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = pix_fmt
            opts = {"g": str(gop or max(1, round(2 * fps)))}
            if codec == "libx264":
                opts.update(preset="veryfast", crf="23")
            opts.update(options or {})
            stream.options = opts
            if times is not None:
                stream.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                stream.set_display_rotation(rotation)
            # Every stream is added before the first packet is muxed.
            audio = container.add_stream("aac", rate=16000) if tone_hz else None
            for i, rgb in enumerate(_chain(first, frames)):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                if times is not None:
                    frame.pts = round(times[i] * 1000)
                    frame.time_base = Fraction(1, 1000)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if audio is not None:
                _write_tone(container, audio, tone_hz, (i + 1) / fps if times is None else times[-1] + 1 / fps)


def _write_tone(container, audio, hz: float, seconds: float, rate: int = 16000) -> None:
    samples = (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    for start in range(0, len(samples), 1024):
        block = samples[start:start + 1024]
        frame = av.AudioFrame.from_ndarray(np.pad(block, (0, 1024 - len(block)))[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in audio.encode(frame):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def render_scenes(path: str | os.PathLike, scenes: Sequence[Scene], width: int = 640, height: int = 360,
                  fps: float = 25, seed: int = 0, **encode_kwargs) -> None:
    rng = np.random.default_rng(seed)
    frames = (f for scene in scenes for f in scene.frames(width, height, fps, rng))
    encode_video(path, frames, fps=fps, **encode_kwargs)


# The demo's clips. "astronaut_reupload" is "astronaut_interview" re-encoded at another
# quality and a lower resolution, the copy a real crawl always contains (video_dedup
# keeps the original: it has more pixels).
_INTERVIEW = (
    Scene("astronaut", 3.0, (0.5, 0.3, 1.0)),
    Scene("astronaut", 3.0, (0.5, 0.3, 1.0), (0.45, 0.22, 1.6)),
    Scene("coffee", 2.0, (0.5, 0.5, 1.0), (0.5, 0.5, 1.3)),
    Scene("astronaut", 2.0, (0.5, 0.3, 1.0)),
)
DEMO_CLIPS: dict[str, dict] = {
    "astronaut_interview": {"scenes": _INTERVIEW, "seed": 1},
    "astronaut_reupload": {"scenes": _INTERVIEW, "seed": 1, "width": 480, "height": 270, "options": {"crf": "30"}},
    "cat_and_rocket": {
        "scenes": (
            Scene("chelsea", 3.0, (0.2, 0.5, 1.0), (0.8, 0.5, 1.0)),
            Scene("chelsea", 2.0, (0.45, 0.45, 1.0)),
            Scene("rocket", 3.0, (0.5, 0.6, 1.0), (0.5, 0.3, 1.8), text="SUBSCRIBE"),  # burned-in text
            Scene("chelsea", 2.0, (0.45, 0.45, 1.0), (0.4, 0.4, 1.6)),
        ),
        "seed": 2,
        "tone_hz": 440,  # a soundtrack (a tone, no speech) for the audio stage's wiring
    },
    "street_camera": {
        "scenes": (
            Scene("camera", 4.0, (0.5, 0.5, 1.0)),
            Scene("cat", 3.0, (0.3, 0.5, 1.2), (0.7, 0.5, 1.2)),
        ),
        "seed": 3,
        "codec": "libvpx-vp9",
        "options": {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"},
    },
}


def make_demo_clip(name: str, path: str | os.PathLike) -> None:
    spec = dict(DEMO_CLIPS[name])
    scenes = spec.pop("scenes")
    render_scenes(path, scenes, **spec)


@dataclass(frozen=True)
class ShotTruth:
    """Where the edits of :func:`shot_test_frames` are: the first frame of each shot after
    a hard cut, the flash's frames and the dissolve's frames (first, last)."""

    frames: int
    hard_cuts: tuple[int, ...]
    flash: tuple[int, int]
    dissolve: tuple[int, int]


def shot_test_frames(width: int = 96, height: int = 54, fps: float = 25, seed: int = 0
                     ) -> tuple[list[np.ndarray], ShotTruth]:
    """A clip with every edit a shot detector must tell apart: hard cuts at 2 s and 4 s,
    a 2-frame white flash inside the second shot, a 16-frame dissolve from the third shot
    into the fourth (8 s in all at 25 fps)."""
    rng = np.random.default_rng(seed)

    def shot(scene: Scene) -> list[np.ndarray]:
        return list(scene.frames(width, height, fps, rng))

    first = shot(Scene("astronaut", 2.0, (0.3, 0.4, 1.2), (0.6, 0.4, 1.2)))
    second = shot(Scene("coffee", 2.0, (0.5, 0.5, 1.0), (0.5, 0.5, 1.2)))
    third = shot(Scene("rocket", 2.0, (0.5, 0.5, 1.0), (0.5, 0.4, 1.3)))
    fourth = shot(Scene("chelsea", 2.5, (0.4, 0.5, 1.0), (0.6, 0.5, 1.0)))
    flash = len(first) + len(second) // 2
    for i in (flash, flash + 1):
        second[i - len(first)] = np.full_like(second[0], 255)
    n = round(0.64 * fps)  # the dissolve: the third shot's last n frames blend into the fourth's first n
    mix = [((1 - (k + 1) / (n + 1)) * a.astype(np.float32) + (k + 1) / (n + 1) * b.astype(np.float32)).astype(np.uint8)
           for k, (a, b) in enumerate(zip(third[-n:], fourth[:n]))]
    frames = first + second + third[:-n] + mix + fourth[n:]
    start = len(first) + len(second) + len(third) - n
    truth = ShotTruth(len(frames), (len(first), len(first) + len(second)), (flash, flash + 1), (start, start + n - 1))
    return frames, truth


@dataclass(frozen=True)
class ScoreTruth:
    """The shots of :func:`score_test_frames`: each one's ``(start, end)`` frames (end
    exclusive) and the flash's frames ``(first, last)``."""

    shots: dict[str, tuple[int, int]]
    flash: tuple[int, int]


def score_test_frames(width: int = 160, height: int = 90, fps: float = 25, seconds: float = 2.0, seed: int = 0
                      ) -> tuple[list[np.ndarray], ScoreTruth]:
    """Four shots joined by hard cuts, one per thing the clip scores tell apart: a
    ``moving`` pan, a ``static`` shot (sensor noise only), a slow pan under large
    burned-in ``text`` and a pan with a 2-frame white ``flash`` in its middle."""
    rng = np.random.default_rng(seed)
    scenes = {
        "moving": Scene("chelsea", seconds, (0.25, 0.5, 1.3), (0.75, 0.5, 1.3)),
        "static": Scene("coffee", seconds, (0.5, 0.5, 1.0)),
        "text": Scene("rocket", seconds, (0.45, 0.5, 1.2), (0.55, 0.5, 1.2), text="SUBSCRIBE"),
        "flash": Scene("astronaut", seconds, (0.3, 0.4, 1.2), (0.6, 0.4, 1.2)),
    }
    frames: list[np.ndarray] = []
    shots = {}
    for name, scene in scenes.items():
        shot = list(scene.frames(width, height, fps, rng))
        if name == "flash":
            middle = len(frames) + len(shot) // 2
            for i in (middle, middle + 1):
                shot[i - len(frames)] = np.full_like(shot[0], 255)
            flash = (middle, middle + 1)
        shots[name] = (len(frames), len(frames) + len(shot))
        frames += shot
    return frames, ScoreTruth(shots, flash)
