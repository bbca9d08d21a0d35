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

    from personcut import Segmenter
    from personcut.scoring import MaskFolder, Scores

    seg = Segmenter(args.model, device="cpu")
    folder = MaskFolder.read(args.data)
    scores = Scores()
    pixels, seconds = 0, 0.0
    for pair in tqdm(folder, desc=f"evaluate x{args.scale:g}"):
        image, mask = pair.load()
        size = (round(image.shape[1] * args.scale), round(image.shape[0] * args.scale))
        rgb = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        target = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
        start = time.perf_counter()
        alpha = seg.predict_rgb([rgb])[0]
        seconds += time.perf_counter() - start
        pixels += rgb.shape[0] * rgb.shape[1]
        scores.add(alpha, target, pair.source)
    result = scores.result()
    by_source = {k: round(v["person_iou"], 5) for k, v in result.get("by_source", {}).items()}
    images = len(folder)
    result = {
        "model": seg.path.name,
        "scale": args.scale,
        "images": images,
        "mean_megapixels": round(pixels / images / 1e6, 2),
        "person_iou": {"all": round(result["person_iou"], 5), **by_source},
        "predict_ms_per_image": round(seconds / images * 1000, 1),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
