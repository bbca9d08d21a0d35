"""Tune the step that brings the mask to full size (the guided filter's radius and eps) on
persons-train, never on persons-val: boundary F and alpha MAE from personcut.scoring.

    python benchmarks/tune_edges.py                    # 240 persons-train photos, x1 and x3
    python benchmarks/tune_edges.py --limit 60 --scales 3

Each photo is scored as it is and enlarged by 3 (bicubic; mask nearest), where the guided filter
upsamples by about 3x as at a megapixel. The shipped setting is refine.GUIDE.
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--limit", type=int, default=240)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "tune_edges.json")
    args = p.parse_args()

    from personcut import Segmenter
    from personcut.scoring import MaskFolder, Scores

    seg = Segmenter(device="cpu")
    pairs = MaskFolder.read(args.data).pairs
    pairs = pairs[:: max(1, len(pairs) // args.limit)][: args.limit]  # every source
    rows = []
    for scale in args.scales:
        scores = {setting: Scores(edges=True) for setting in SETTINGS}
        for pair in tqdm(pairs, desc=f"x{scale:g}"):
            image, mask = pair.load()
            if scale != 1:
                size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
                image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
                mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
            for setting, s in scores.items():
                seg.guide = setting
                s.add(seg.predict_rgb([image])[0], mask, pair.source, pair.image.stem)
        for (radius, eps), s in scores.items():
            r = s.result()
            rows.append(
                {
                    "scale": scale,
                    "radius": radius,
                    "eps": eps,
                    "person_iou": round(r["person_iou"], 4),
                    "boundary_f": round(r["boundary_f"], 4),
                    "alpha_mae": round(r["mae"], 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"photos": len(pairs), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
