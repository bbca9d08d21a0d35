"""Quality at the sizes people cut out: persons-val scaled up to about a megapixel.

    python benchmarks/eval_large.py                                  # shipped model, x3
    PYTHONPATH=OLD/src python benchmarks/eval_large.py --out old.json   # an older checkout

persons-val's photos are small (most 320x240 or 384x256), so `personcut evaluate` never runs the
steps that only matter for big photos: the shrink to the working size (a box reduction first
above 2x) and the guided filter's upsampling by 3-4x. Here every photo is enlarged by --scale
(bicubic; its mask nearest) and cut out through the Segmenter, the path `personcut remove`
runs. Scores are whole-set person IoU (and per source), the mask taken at alpha >= 0.5. Use it to
check that a speed change keeps quality at 1 MP: run it before and after, compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data/persons-val")
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--scale", type=float, default=3.0)
    p.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = p.parse_args()

    from personcut.inference import Segmenter

    seg = Segmenter(args.model, device="cpu")
    images = sorted((args.data / "images").iterdir())
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # intersection, union
    pixels, seconds = 0, 0.0
    for path in tqdm(images, desc=f"evaluate x{args.scale:g}"):
        mask_path = next((args.data / "masks").glob(path.stem + ".*"))
        with Image.open(path) as im, Image.open(mask_path) as mk:
            size = (round(im.width * args.scale), round(im.height * args.scale))
            rgb = np.asarray(im.convert("RGB").resize(size, Image.BICUBIC))
            target = np.asarray(mk.convert("L").resize(size, Image.NEAREST)) > 127
        start = time.perf_counter()
        alpha = seg.predict_rgb([rgb])[0]
        seconds += time.perf_counter() - start
        pixels += rgb.shape[0] * rgb.shape[1]
        pred = alpha >= 0.5
        inter, union = int((pred & target).sum()), int((pred | target).sum())
        source = path.name.split("-")[0]
        for key in ("all", source):
            counts[key][0] += inter
            counts[key][1] += union
    scores = {k: round(i / max(u, 1), 5) for k, (i, u) in sorted(counts.items())}
    result = {
        "model": seg.path.name,
        "scale": args.scale,
        "images": len(images),
        "mean_megapixels": round(pixels / len(images) / 1e6, 2),
        "person_iou": scores,
        "predict_ms_per_image": round(seconds / len(images) * 1000, 1),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
