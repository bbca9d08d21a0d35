"""Tune the step that brings the mask to full size (the guided filter's radius and eps) on
persons-train, never on persons-val: boundary F and alpha MAE from personcut.scoring.

    python benchmarks/tune_edges.py                    # 240 persons-train photos, x1 and x3
    python benchmarks/tune_edges.py --limit 60 --scales 3
    python benchmarks/tune_edges.py --scales 1 --settings 2,1e-3 --levels 0.05,0.85 0.1,0.9

Each photo is scored as it is and enlarged by 3 (bicubic; mask nearest), where the guided filter
upsamples by about 3x as at a megapixel. The shipped setting is refine.GUIDE. With ``--colour``
each setting is also tried with the photo's three colour channels as the guide (He et al.'s
colour guided filter, written here, not in the package: it did not measure better). ``--levels``
tries other alpha levels (low,high: where the cut at 0.5 falls on the network's probability).
The network runs once per photo; only the upsampling step differs between rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "persons-train"
SETTINGS = [(1, 1e-3), (2, 1e-4), (2, 1e-3), (2, 1e-2), (3, 1e-3), (4, 1e-3), (4, 1e-2)]


def colour_guided(
    prob: np.ndarray,
    small: np.ndarray,
    full: np.ndarray,
    radius: int,
    eps: float,
    stretch: tuple[float, float],
) -> np.ndarray:
    """Fast guided filter with the colour photo as guide: q = a . I + b, a from the 3x3 colour
    covariance (+ eps) at the working size, a and b enlarged and applied to the full photo."""
    from personcut.refine import box_mean

    guide = small.astype(np.float32) / 255.0
    p = prob.astype(np.float32)
    ch = [guide[..., k] for k in range(3)]
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    m = box_mean(
        np.stack([*ch, p, *(c * p for c in ch), *(ch[i] * ch[j] for i, j in pairs)]), radius
    )
    mean_i, mean_p, mean_ip = m[0:3], m[3], m[4:7]
    sigma = np.empty((*p.shape, 3, 3), np.float32)
    for k, (i, j) in enumerate(pairs):
        sigma[..., i, j] = sigma[..., j, i] = m[7 + k] - mean_i[i] * mean_i[j]
    sigma += eps * np.eye(3, dtype=np.float32)
    cov = np.moveaxis(mean_ip - mean_i * mean_p, 0, -1)[..., None]
    a = np.linalg.solve(sigma, cov)[..., 0]
    b = mean_p - (a * np.moveaxis(mean_i, 0, -1)).sum(-1)
    coef = box_mean(np.stack([a[..., 0], a[..., 1], a[..., 2], b]), radius)
    low, high = stretch
    coef[:3] /= high - low
    coef[3] = (coef[3] - low) / (high - low)
    h, w = full.shape[:2]
    up = [np.asarray(Image.fromarray(c, "F").resize((w, h), Image.BILINEAR)) for c in coef]
    rgb = full.astype(np.float32) / 255.0
    q = up[0] * rgb[..., 0] + up[1] * rgb[..., 1] + up[2] * rgb[..., 2] + up[3]
    return np.clip(q, 0.0, 1.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--limit", type=int, default=240)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "tune_edges.json")
    p.add_argument("--colour", action="store_true", help="also try a colour guide")
    pair = lambda text: tuple(float(v) for v in text.split(","))  # noqa: E731
    p.add_argument("--settings", type=pair, nargs="+", help="radius,eps pairs (default: a grid)")
    p.add_argument("--levels", type=pair, nargs="+", help="low,high pairs (default: the shipped)")
    args = p.parse_args()

    from personcut import Segmenter
    from personcut.refine import ALPHA_LEVELS, to_full_size
    from personcut.scoring import MaskFolder, Scores
    from personcut.segmenter import _sigmoid

    seg = Segmenter(device="cpu")
    pairs = MaskFolder.read(args.data).pairs
    pairs = pairs[:: max(1, len(pairs) // args.limit)][: args.limit]  # every source
    guides = ["gray", "colour"] if args.colour else ["gray"]
    settings = [(int(r), e) for r, e in args.settings or SETTINGS]
    levels = args.levels or [ALPHA_LEVELS]
    variants = [(g, r, e, lv) for g in guides for r, e in settings for lv in levels]
    rows = []
    for scale in args.scales:
        scores = {v: Scores(edges=True) for v in variants}
        for pair in tqdm(pairs, desc=f"x{scale:g}"):
            image, mask = pair.load()
            if scale != 1:
                size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
                image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
                mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
            # The Segmenter's own steps (as profile_remove.py): one network pass per photo.
            small, _ = seg.prepare(image)  # stretched to the stride: nothing to crop off
            prob = _sigmoid(seg.logits(seg.to_batch([small]))[0, 0])
            photo = Image.fromarray(image)
            for (guide, radius, eps, lv), s in scores.items():
                if guide == "gray":
                    alpha = to_full_size(prob, small, photo, lv, True, (radius, eps))
                else:
                    alpha = colour_guided(prob, small, image, radius, eps, lv)
                s.add(alpha, mask, pair.source, pair.image.stem)
        for (guide, radius, eps, lv), s in scores.items():
            r = s.result()
            rows.append(
                {
                    "scale": scale,
                    "guide": guide,
                    "radius": radius,
                    "eps": eps,
                    "levels": list(lv),
                    "person_iou": round(r["person_iou"], 4),
                    "boundary_f": round(r["boundary_f"], 4),
                    "alpha_mae": round(r["mae"], 4),
                    "boundary_f_by_source": {
                        k: round(v["boundary_f"], 4) for k, v in r.get("by_source", {}).items()
                    },
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"photos": len(pairs), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
