"""Try: alpha re-estimated from colour at the edge, to cut the halo the alpha leaves.

    python benchmarks/try_colour_alpha.py                  # 100 composites, 150 photos
    python benchmarks/try_colour_alpha.py --limit 30 --photos 40

The halo benchmark (bench_halo.py) shows that what is left of the fringe after blur-fusion
decontamination is the alpha's: where the cut-out's alpha lies a pixel or two outside the
person, the pixel is old background at part opacity and no colour estimate takes it out.
This tries the matting model itself at the mixed pixels: I = a F + (1 - a) B with F and B the
local means of the sure person (alpha >= 0.95) and sure background (alpha <= 0.05) within
``radius`` px, so a = (I - B) . (F - B) / |F - B|^2 (the colour-line projection), trusted by
|F - B|^2 / (|F - B|^2 + tau) (where person and background look alike the network's alpha
stays). ``choke`` only lets the projection lower the alpha (background taken out, never added).

Tuned on persons-train only (never persons-val): the halo composites of tune_decontaminate.py
(fringe, edge band) and the photos themselves (person IoU, boundary F, alpha MAE against their
masks), each in the default mode (mirror pass, guided filter, levels). Writes
benchmarks/results/try_colour_alpha.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_halo  # noqa: E402  (the composites and the errors, shared with the benchmark)
import tune_decontaminate  # noqa: E402

# (radius px, tau, choke only)
VARIANTS = [
    (3, 0.01, False),
    (5, 0.01, False),
    (8, 0.01, False),
    (5, 0.003, False),
    (5, 0.03, False),
    (5, 0.01, True),
    (8, 0.01, True),
    (0, 0.01, False),
    (0, 0.01, True),
]
"""Radius 0: F and B from the shipped decontamination's own means instead (compose's blur-fusion
grid of at most 128 px, read bilinearly): no extra blurs, coarser."""


def colour_alpha(rgb: np.ndarray, alpha: np.ndarray, radius: int, tau: float, choke: bool):
    """``alpha`` with its mixed pixels (0 < alpha < 1) re-estimated by the colour-line
    projection onto the local sure-person and sure-background means (see the module doc)."""
    from personcut.refine import box_mean

    mixed = (alpha > 0) & (alpha < 1)
    if not mixed.any():
        return alpha
    image = rgb.astype(np.float32) / 255.0
    if radius == 0:
        return _project(image, alpha, *_fusion_means(rgb, alpha), mixed, tau, choke)
    fore = (alpha >= 0.95).astype(np.float32)
    back = (alpha <= 0.05).astype(np.float32)
    stack = np.concatenate(
        [image * fore[..., None], fore[..., None], image * back[..., None], back[..., None]],
        axis=-1,
    ).transpose(2, 0, 1)
    s = box_mean(np.ascontiguousarray(stack), radius).transpose(1, 2, 0)
    f = s[..., 0:3] / np.maximum(s[..., 3:4], 1e-6)
    b = s[..., 4:7] / np.maximum(s[..., 7:8], 1e-6)
    known = (s[..., 3] > 0) & (s[..., 7] > 0)
    return _project(image, alpha, f, b, known & mixed, tau, choke)


def _fusion_means(rgb: np.ndarray, alpha: np.ndarray):
    """The shipped decontamination's foreground and background means, enlarged to the photo by
    tune_decontaminate's smooth float resize (the package reads them from a k-times 8-bit grid
    instead, compose._enlarge: the same means, not the same enlargement)."""
    from personcut.compose import _colour_means

    return tune_decontaminate.enlarge_means(_colour_means(rgb, alpha), *alpha.shape)


def _project(image, alpha, f, b, where, tau: float, choke: bool) -> np.ndarray:
    """Alpha moved towards the colour-line projection of each pixel onto (B, F) where trusted,
    at the pixels ``where`` (mixed ones, the callers' mask)."""
    d = f - b
    dd = (d * d).sum(-1)
    projected = np.clip(((image - b) * d).sum(-1) / (dd + 1e-6), 0.0, 1.0)
    trust = np.where(where, dd / (dd + tau), 0.0)
    new = alpha + trust * (projected - alpha)
    if choke:
        new = np.minimum(new, alpha)
    return new.astype(np.float32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=bench_halo.DATA)
    p.add_argument("--limit", type=int, default=100, help="halo composites")
    p.add_argument("--photos", type=int, default=150, help="persons-train photos")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="photos enlarged this many times (bicubic; masks nearest), radii too",
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "try_colour_alpha.json")
    args = p.parse_args()
    from PIL import Image

    from personcut import Segmenter
    from personcut.compose import decontaminate
    from personcut.scoring import MaskFolder, Scores

    seg = Segmenter(device="cpu")
    names = ["shipped"] + [
        f"{f'radius {r}' if r else 'fusion means'}, tau {t}{', choke' if c else ''}"
        for r, t, c in VARIANTS
    ]
    halo: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    items = list(bench_halo.composites(args.data, args.limit, "persons-train", step=16))
    for item in tqdm(items, desc="composites"):
        i1 = item[1]
        (alpha,) = seg.predict_rgb([i1])
        alphas = [alpha] + [colour_alpha(i1, alpha, *v) for v in VARIANTS]
        for name, a in zip(names, alphas, strict=True):
            halo[name].append(tune_decontaminate.errors(decontaminate(i1, a), a, item))

    scores = {n: Scores(edges=True) for n in names}
    pairs = MaskFolder.read(args.data / "persons-train").pairs
    pairs = pairs[7 :: max(1, len(pairs) // args.photos)][: args.photos]  # every source
    for pair in tqdm(pairs, desc="photos"):
        image, mask = pair.load()
        if args.scale != 1:  # as at a megapixel: the guided filter enlarges ~3x
            size = (round(image.shape[1] * args.scale), round(image.shape[0] * args.scale))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
        (alpha,) = seg.predict_rgb([image])
        alphas = [alpha] + [
            colour_alpha(image, alpha, round(r * args.scale), t, c) for r, t, c in VARIANTS
        ]
        for name, a in zip(names, alphas, strict=True):
            scores[name].add(a, mask, pair.source, pair.image.stem)

    rows = {}
    for name in names:
        r = scores[name].result()
        rows[name] = {
            "fringe_error": round(float(np.mean([e[0] for e in halo[name]])), 3) if items else None,
            "edge_band_error": round(float(np.mean([e[1] for e in halo[name]])), 3)
            if items
            else None,
            "person_iou": round(r["person_iou"], 4),
            "boundary_f": round(r["boundary_f"], 4),
            "alpha_mae": round(r["mae"], 4),
            "boundary_f_by_source": {
                k: round(v["boundary_f"], 4) for k, v in r.get("by_source", {}).items()
            },
        }
        print(name, json.dumps(rows[name]), flush=True)
    result = {"composites": len(items), "photos": len(pairs), "scale": args.scale, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
