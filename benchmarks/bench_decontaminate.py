"""Time of the colour decontamination step alone (compose.decontaminate), per photo size.

The sample photo (examples/astronaut.jpg) resized to each size, its alpha from the shipped model;
best of ``--repeats`` (this machine's timings swing, the best is the steadiest figure). Run it on
two checkouts to compare versions of the step.

    python benchmarks/bench_decontaminate.py                  # 1 and 6.75 MP
    python benchmarks/bench_decontaminate.py --sizes 0.25 1 4 --repeats 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1.0, 6.75], help="megapixels")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    from personcut import Segmenter
    from personcut.compose import BAND, decontaminate

    seg = Segmenter()
    photo = Image.open(ROOT / "examples" / "astronaut.jpg").convert("RGB")
    rows = []
    for mp in args.sizes:
        s = (mp * 1e6 / (photo.width * photo.height)) ** 0.5
        rgb = np.asarray(photo.resize((round(photo.width * s), round(photo.height * s))))
        alpha = seg.predict_mask(rgb)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            decontaminate(rgb, alpha)
            times.append(time.perf_counter() - start)
        band = int(((alpha > BAND[0]) & (alpha < BAND[1])).sum())
        rows.append(
            {
                "megapixels": round(rgb.shape[0] * rgb.shape[1] / 1e6, 2),
                "mixed_pixels": band,
                "best_ms": round(min(times) * 1000, 1),
                "median_ms": round(float(np.median(times)) * 1000, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
