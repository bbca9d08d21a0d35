"""Tune colour decontamination on persons-train composites (never persons-val): the halo
benchmark's fringe and edge-band errors (bench_halo.py) for settings of the estimator and of
the alpha levels.

    python benchmarks/tune_decontaminate.py                  # 100 composites
    python benchmarks/tune_decontaminate.py --limit 30

Rows:
- ``shipped``: compose.decontaminate as it is;
- ``grid G, wide W, narrow N, passes P``: blur-fusion written out here with its means read
  bilinearly at full size (the shipped step's reference), on a grid of G px, the wide blur W of
  the grid's side, the narrow one N px of the photo, P passes;
- ``levels (L, H)``: the shipped step with the alpha's levels step at (L, H) instead of
  ALPHA_LEVELS (a higher L chokes the edge: less background carried, less person kept).

Writes benchmarks/results/tune_decontaminate.json.
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
sys.path.insert(0, str(HERE))

import bench_halo  # noqa: E402  (the composites and the errors, shared with the benchmark)

# (grid px, wide blur as a share of the grid's side, narrow blur px, passes)
ESTIMATORS = [
    (128, 0.08, 6, 2),
    (256, 0.08, 6, 2),
    (1024, 0.08, 6, 2),
    (128, 0.04, 6, 2),
    (128, 0.16, 6, 2),
    (128, 0.08, 3, 2),
    (128, 0.08, 6, 1),
    (128, 0.08, 6, 3),
]
LEVELS = [(0.1, 0.9), (0.2, 0.9), (0.3, 0.9), (0.2, 0.95), (0.3, 0.95), (0.4, 0.95)]


def enlarge_means(means: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Blur fusion's HxWx6 (F, B) means in [0, 1] enlarged to h x w (Pillow's default resampling
    on float maps): (F, B), each h x w x 3."""
    up = [
        np.asarray(Image.fromarray(means[..., c].astype(np.float32), "F").resize((w, h)))
        for c in range(6)
    ]
    return np.dstack(up[:3]), np.dstack(up[3:])


def blur_fusion(
    rgb: np.ndarray, alpha: np.ndarray, grid: int, wide: float, narrow: float, passes: int
) -> np.ndarray:
    """Forte and Pitie's estimator, means read bilinearly at every pixel (slow, exact)."""
    from personcut.compose import BAND, _blur_means

    h, w = alpha.shape
    scale = min(1.0, grid / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray(rgb).resize((sw, sh), Image.BILINEAR, reducing_gap=1.0)
    image = np.asarray(small, np.float32) / 255
    a = Image.fromarray(alpha.astype(np.float32), "F").resize((sw, sh), Image.BILINEAR)
    a = np.clip(np.asarray(a), 0, 1)[..., None]
    means = _blur_means(image, image, a, max(1, round(wide * max(sh, sw))))
    for _ in range(passes - 1):
        f, b = means[..., :3], means[..., 3:]
        fore = np.clip(f + a * (image - a * f - (1 - a) * b), 0, 1)
        means = _blur_means(fore, b, a, max(1, round(narrow * scale)))
    f, b = enlarge_means(means, h, w)
    f, b = f * 255, b * 255
    al = alpha[..., None]
    fore = np.clip(f + al * (rgb - al * f - (1 - al) * b) + 0.5, 0, 255)
    band = ((alpha > BAND[0]) & (alpha < BAND[1]))[..., None]
    return np.where(band, fore, rgb).astype(np.uint8)


def errors(fg: np.ndarray, alpha: np.ndarray, item) -> tuple[float, float]:
    """(fringe, edge band) of a cut-out with colours ``fg`` and alpha ``alpha``."""
    _, _, b2, true_alpha, truth = item
    cut = np.dstack([fg, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])
    band = bench_halo.band_of(true_alpha)
    band_error = np.abs(bench_halo.over(cut, b2) - truth).mean(-1)[band].mean()
    return bench_halo.fringe(cut, item[1], true_alpha, b2, truth, band), float(band_error)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=bench_halo.DATA)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--out", type=Path, default=HERE / "results" / "tune_decontaminate.json")
    args = p.parse_args()

    from personcut import Segmenter
    from personcut.compose import decontaminate
    from personcut.refine import ALPHA_LEVELS, levels

    seg = Segmenter(device="cpu", alpha_levels=None)  # levels applied here, per row
    items = list(bench_halo.composites(args.data, args.limit, "persons-train", step=16))
    raw = [seg.predict_rgb([item[1]])[0] for item in tqdm(items, desc="alpha")]
    rows: dict[str, list[tuple[float, float]]] = {}
    for item, prob in zip(tqdm(items, desc="composites"), raw, strict=True):
        i1 = item[1]
        alpha = levels(prob, *ALPHA_LEVELS)
        rows.setdefault("raw colours", []).append(errors(i1, alpha, item))
        rows.setdefault("shipped", []).append(errors(decontaminate(i1, alpha), alpha, item))
        for g, wide, narrow, passes in ESTIMATORS:
            name = f"grid {g}, wide {wide}, narrow {narrow}, passes {passes}"
            fg = blur_fusion(i1, alpha, g, wide, narrow, passes)
            rows.setdefault(name, []).append(errors(fg, alpha, item))
        for lv in LEVELS:
            a = levels(prob, *lv)
            rows.setdefault(f"levels {lv}", []).append(errors(decontaminate(i1, a), a, item))
    result = {
        name: {
            "fringe_error": round(float(np.mean([e[0] for e in errs])), 3),
            "edge_band_error": round(float(np.mean([e[1] for e in errs])), 3),
        }
        for name, errs in rows.items()
    }
    result["composites"] = len(items)
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
