"""False people: how often a model calls person on photos with nobody in them.

    python benchmarks/false_people.py                             # shipped model, held-out half
    python benchmarks/false_people.py --model runs/x/best.safetensors --out x.json

Photos: ``../shared/data/backdrops-extra`` (person-free, screened by MediaPipe and by eye), the
files at odd positions of each source folder (sorted): the even ones are what training may use
as hard negatives (``data.negatives`` with ``split: even``), so these are never trained on.
Reported: the share of photos with more than 1 % of their pixels called person (alpha > 0.5),
per source folder and over all, the mean person fraction, and each photo over the limit with its
fraction (``over_limit``: so two models' counts can be compared photo by photo, and a count one
higher read as one borderline photo or as a new kind of mistake). Lower is better; the issue's
target for ADE20K person-free scenes is 8 % or less.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "backdrops-extra"


def held_out(root: Path, offset: int = 1) -> list[Path]:
    """Every second photo of each source folder (sorted), starting at ``offset``."""
    files = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "licenses"):
        files += sorted(folder.glob("*.jpg"))[offset::2]
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--quality", default="balanced", help="fast, balanced or best")
    p.add_argument("--limit", type=float, default=0.01, help="person share that counts")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()

    from personcut import Segmenter

    seg = Segmenter(args.model, device="cpu", quality=args.quality)
    files = held_out(args.data)
    fractions: dict[str, list[float]] = {}
    over_limit: dict[str, float] = {}
    for path in tqdm(files, desc="person-free photos"):
        alpha = seg.predict_mask(path)
        fraction = float((alpha > 0.5).mean())
        fractions.setdefault(path.parent.name, []).append(fraction)
        if fraction > args.limit:
            over_limit[f"{path.parent.name}/{path.name}"] = round(fraction, 4)
    every = [f for fs in fractions.values() for f in fs]

    def summary(fs: list[float]) -> dict:
        return {
            "photos": len(fs),
            "share_over_limit": round(float(np.mean(np.array(fs) > args.limit)), 4),
            "mean_person_fraction": round(float(np.mean(fs)), 5),
        }

    result = {
        "model": seg.path.name,
        "quality": args.quality,
        "limit": args.limit,
        "all": summary(every),
        "by_source": {k: summary(v) for k, v in sorted(fractions.items())},
        "over_limit": over_limit,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
