"""persons-val made hard in the ways users' photos are: does the model still find the people?

    python benchmarks/robustness.py                         # the shipped model
    python benchmarks/robustness.py --model runs/x/model.onnx --out x.json
    python benchmarks/robustness.py --quality best

Each persons-val photo (and its mask, where the change moves pixels) is changed one way at a
time and scored as a whole set (person IoU, as ``personcut evaluate``):

- ``plain``: unchanged; ``gray``: luma only; ``sepia``: luma toned brown (old prints);
- ``turn90`` / ``turn180``: the photo turned (a phone that dropped its EXIF orientation);
- ``dark`` / ``bright``: under-exposed (x0.3, then a little sensor noise) and over-exposed
  (x2.2, clipped);
- ``backlit``: the person darkened to a near-silhouette against a brightened background;
- ``shadow``: the person's hard shadow on the ground from the feet: the silhouette mirrored at
  its lowest row, squashed to half height and sheared, edges blurred, the ground under it at
  45 % brightness (the person untouched, the mask unchanged; photos cut above the feet barely
  change);
- ``closeup``: the upper 45 % of the person's box, widened to the photo's aspect ratio, enlarged
  back to the photo's size (a face and shoulders that overflow the frame).

These are written here on their own, not imported from the training augmentations, so a model is
not graded by the code that trained it. The changes are fixed (no randomness but the noise, from
a fixed seed), so two models see the same photos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "persons-val"


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def closeup_box(mask: np.ndarray, aspect: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the top 45 % of the person's bounding box, widened or heightened to
    ``aspect`` (width / height) about its centre and kept inside the photo."""
    ys, xs = np.nonzero(mask == 1)
    if len(ys) == 0:
        return None
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h = max(8, int(0.45 * (bottom - top)))
    w = right - left
    if w / h < aspect:
        w = int(round(h * aspect))
    else:
        h = int(round(w / aspect))
    H, W = mask.shape
    w, h = min(w, W), min(h, H)
    cx = (left + right) // 2
    x0 = int(np.clip(cx - w // 2, 0, W - w))
    y0 = int(np.clip(top, 0, H - h))
    return x0, y0, x0 + w, y0 + h


def change(name: str, rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """The photo and mask changed one way (see the module docstring)."""
    if name == "plain":
        return rgb, mask
    if name in ("gray", "sepia"):
        y = luma(rgb)
        tone = np.array([1.0, 1.0, 1.0] if name == "gray" else [1.07, 0.95, 0.78], np.float32)
        return np.clip(y[..., None] * tone, 0, 255).astype(np.uint8), mask
    if name == "turn90":
        return np.ascontiguousarray(np.rot90(rgb)), np.ascontiguousarray(np.rot90(mask))
    if name == "turn180":
        return np.ascontiguousarray(rgb[::-1, ::-1]), np.ascontiguousarray(mask[::-1, ::-1])
    if name == "dark":
        out = rgb.astype(np.float32) * 0.3 + rng.normal(0, 2.0, rgb.shape)
        return np.clip(out, 0, 255).astype(np.uint8), mask
    if name == "bright":
        return np.clip(rgb.astype(np.float32) * 2.2, 0, 255).astype(np.uint8), mask
    if name == "backlit":
        # A soft person weight so the silhouette's edge is not a hard cut the model could key on.
        weight = (
            np.asarray(
                Image.fromarray((mask == 1).astype(np.uint8) * 255)
                .resize((max(1, mask.shape[1] // 8), max(1, mask.shape[0] // 8)), Image.BILINEAR)
                .resize(mask.shape[::-1], Image.BILINEAR),
                np.float32,
            )[..., None]
            / 255
        )
        gain = 0.2 * weight + 1.7 * (1 - weight)
        return np.clip(rgb.astype(np.float32) * gain + 25 * (1 - weight), 0, 255).astype(
            np.uint8
        ), mask
    if name == "shadow":
        # Each pixel below the feet takes the person's pixel mirrored at the feet's row at twice
        # the distance (squashed to half height) and 0.6 of a pixel further left per row (sheared).
        person = mask == 1
        rows = np.nonzero(person.any(1))[0]
        if len(rows) == 0:
            return rgb, mask
        h, w = mask.shape
        ys, xs = np.mgrid[0:h, 0:w]
        below = ys - rows[-1]
        sy, sx = (
            np.round(rows[-1] - below / 0.5).astype(int),
            np.round(xs - 0.6 * below).astype(int),
        )
        ok = (below >= 0) & (sy >= 0) & (sx >= 0) & (sx < w)
        cast = np.zeros((h, w), np.uint8)
        cast[ok] = person[sy[ok], sx[ok]] * 255
        soft = np.asarray(Image.fromarray(cast).filter(ImageFilter.GaussianBlur(1.5)), np.float32)
        shade = (soft / 255) * ~person
        return np.clip(rgb * (1 - 0.55 * shade[..., None]), 0, 255).astype(np.uint8), mask
    if name == "closeup":
        box = closeup_box(mask, rgb.shape[1] / rgb.shape[0])
        if box is None:
            return rgb, mask
        x0, y0, x1, y1 = box
        size = (rgb.shape[1], rgb.shape[0])
        crop = Image.fromarray(rgb[y0:y1, x0:x1]).resize(size, Image.BICUBIC)
        m = Image.fromarray(mask[y0:y1, x0:x1]).resize(size, Image.NEAREST)
        return np.asarray(crop), np.asarray(m)
    raise ValueError(f"unknown change {name!r}")


CHANGES = (
    "plain",
    "gray",
    "sepia",
    "turn90",
    "turn180",
    "dark",
    "bright",
    "backlit",
    "shadow",
    "closeup",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--quality", default="balanced", help="fast, balanced or best")
    p.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()

    from personcut import Segmenter
    from personcut.scoring import MaskFolder, Scores

    seg = Segmenter(args.model, device="cpu", quality=args.quality)
    pairs = list(MaskFolder.read(args.data))
    scores = {name: Scores() for name in args.changes}
    rng = np.random.default_rng(0)
    for pair in tqdm(pairs, desc="persons-val, changed"):
        rgb, mask = pair.load()
        for name in args.changes:
            x, m = change(name, rgb, mask, rng)
            scores[name].add(seg.predict_rgb([x])[0], m, pair.source)
    result = {
        "model": seg.path.name,
        "quality": args.quality,
        "person_iou": {n: round(s.result()["person_iou"], 4) for n, s in scores.items()},
        "coco_person_iou": {
            n: round(s.result().get("by_source", {}).get("coco", {}).get("person_iou", 0.0), 4)
            for n, s in scores.items()
        },
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
