"""Crop scores of right and wrong boxes, to choose ``detection.verify_threshold``.

Boxes drawn by hand on the photos that ship with scikit-image: each crop is scored (as
the verify stage scores it: padding, template, SigLIP sigmoid) against its own class
(right) and against every other class (wrong: what a hallucinated box of that class looks
like), and background crops against every class (wrong). Prints both distributions and
the threshold halfway between them on a log scale, when they separate.

Usage: python benchmarks/verify_threshold.py --model google/siglip2-so400m-patch14-384
       [--template "a photo of a {}"] [--padding 0.1] [--device auto]
"""

from __future__ import annotations

import argparse

import numpy as np
import skimage.data
from PIL import Image

from video_miner.models import ModelSettings, SiglipScorer
from video_miner.verify import crop_box, prompts

# photo -> [(class, x, y, w, h)]: the objects, boxes drawn by eye on scikit-image's photos
RIGHT = {
    "astronaut": [("face", 177, 66, 95, 95), ("person", 0, 0, 460, 512)],
    "chelsea": [("cat", 0, 0, 400, 300), ("cat face", 60, 0, 330, 300)],
    "coffee": [("cup", 170, 15, 250, 290)],
    "rocket": [("rocket", 295, 120, 55, 295)],
}
# photo -> [(x, y, w, h)]: crops of no class (wood, night sky, the blurred room)
BACKGROUND = {"astronaut": [], "coffee": [(500, 300, 100, 100)], "rocket": [(350, 10, 80, 80)],
              "chelsea": [(405, 60, 46, 120)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--template", default="a photo of a {}")
    parser.add_argument("--padding", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    classes = sorted({c for boxes in RIGHT.values() for c, *_ in boxes})
    scorer = SiglipScorer(args.model, ModelSettings(device=args.device), prompts(classes, args.template))
    crops, labels = [], []
    for name, boxes in RIGHT.items():
        image = Image.fromarray(getattr(skimage.data, name)())
        crops += [crop_box(image, box, args.padding) for _, *box in boxes]
        labels += [c for c, *_ in boxes]
        crops += [crop_box(image, box, args.padding) for box in BACKGROUND[name]]
        labels += [None] * len(BACKGROUND[name])
    scores = scorer.score_images(crops)
    right = [float(scores[i, classes.index(c)]) for i, c in enumerate(labels) if c is not None]
    wrong = [float(scores[i, j]) for i, c in enumerate(labels) for j, other in enumerate(classes)
             if other != c and not (c and (c in other or other in c))]  # "cat" in a "cat face" crop is right too
    print(f"model {args.model}, template {args.template!r}, padding {args.padding}")
    for name, values in (("right", right), ("wrong", wrong)):
        q = np.quantile(values, [0, 0.1, 0.5, 0.9, 1])
        print(f"{name:5s} ({len(values)} crops): min {q[0]:.2e}  p10 {q[1]:.2e}  median {q[2]:.2e}  "
              f"p90 {q[3]:.2e}  max {q[4]:.2e}")
    if min(right) > max(wrong):
        print(f"separable: a threshold of {np.sqrt(min(right) * max(wrong)):.3g} (log-scale midpoint) keeps every "
              "right box and drops every wrong one")
    else:
        print(f"not separable: {sum(s <= max(wrong) for s in right)} right crops score at or below the best wrong one")


if __name__ == "__main__":
    main()
