"""Pixel work shared by the stages that write or send images (not in ``images``, the
image-folder input, which the download job's environment reads without PIL)."""

from __future__ import annotations

from PIL import Image


def shrink_to(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` scaled down (LANCZOS) so its longer side is at most ``max_side`` pixels;
    the image itself when it fits or ``max_side`` is None."""
    if not max_side or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.LANCZOS)
