"""Where models go wrong on chosen photos: a sheet with one row per photo and one column per
model, each the photo with the pixels the model missed in red and the ones it took as person
wrongly in blue (against the photo's mask, thresholded at 0.5 as the scores are).

    python benchmarks/show_errors.py --photos ccp-0129 ccp-0578 \\
        --models shipped=personcut s40=runs/judge/s40.onnx --out /tmp/errors.png
    python benchmarks/show_errors.py --worst 6 --against rembg-u2net --source ccp --out /tmp/w.png

``--worst N --against TOOL`` picks the photos itself: the N where TOOL's boundary F (or
``--by iou``) beats personcut's by most in benchmarks/results/compare.json (per image, written
by benchmarks/compare.py), optionally of one ``--source``; it prints them with both figures.
Each photo's person IoU under each model is printed as well as drawn.

A model is the shipped name or an ONNX file (benchmarks/judge.py writes one per model it judges:
runs/judge/NAME.onnx). Each is run as ``personcut remove`` runs it, in the default quality mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "persons-val"
COMPARE = HERE / "results" / "compare.json"
MISSED, FALSE = (255, 0, 0), (0, 90, 255)


def error_picture(photo: np.ndarray, alpha: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The photo with missed person pixels red and false person pixels blue."""
    said = alpha > 0.5
    out = photo.copy()
    out[truth & ~said] = MISSED
    out[said & ~truth] = FALSE
    return out


def worst_against(
    results: dict, rival: str, count: int, by: str = "boundary_f", source: str | None = None
) -> list[tuple[str, float, float]]:
    """(stem, personcut's figure, the rival's) for the ``count`` photos where ``rival`` leads
    personcut by most on ``by`` (per image, as compare.json holds them), worst first."""
    if rival not in results:
        raise KeyError(f"compare.json has no {rival!r}; it has {', '.join(results)}")
    ours, theirs = results["personcut"]["per_image"], results[rival]["per_image"]
    stems = [s for s in ours if s in theirs and source in (None, ours[s]["source"])]
    stems.sort(key=lambda s: ours[s][by] - theirs[s][by])
    return [(s, ours[s][by], theirs[s][by]) for s in stems[:count]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--photos", nargs="+", default=[], help="file stems in DATA/images")
    p.add_argument("--worst", type=int, default=0, help="add the N photos a rival leads most")
    p.add_argument("--against", default="rembg-u2net", help="the rival for --worst")
    p.add_argument("--by", default="boundary_f", choices=["boundary_f", "iou", "mae"])
    p.add_argument("--source", help="with --worst: only this source's photos (ccp, coco, ...)")
    p.add_argument("--compare", type=Path, default=COMPARE, help="compare.json for --worst")
    p.add_argument("--models", nargs="+", default=["shipped=personcut"], help="NAME=MODEL")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from personcut import Segmenter
    from personcut.scoring import files_by_stem, load_mask

    if args.worst:
        results = json.loads(args.compare.read_text())["results"]
        for stem, ours, theirs in worst_against(
            results, args.against, args.worst, args.by, args.source
        ):
            print(f"{stem}: personcut {args.by} {ours:.3f}, {args.against} {theirs:.3f}")
            args.photos.append(stem)
    if not args.photos:
        sys.exit("no photos: give --photos or --worst")
    images, masks = files_by_stem(args.data / "images"), files_by_stem(args.data / "masks")
    missing = [s for s in args.photos if s not in images or s not in masks]
    if missing:
        sys.exit(f"{args.data}: no image and mask for {', '.join(missing)}")
    models = dict(m.split("=", 1) for m in args.models)
    rows, cols = len(args.photos), len(models)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 3.2 * rows), squeeze=False)
    # each photo and mask read once, not once per model
    photos = {s: np.asarray(Image.open(images[s]).convert("RGB")) for s in args.photos}
    truths = {s: load_mask(masks[s]) == 1 for s in args.photos}
    for j, (name, model) in enumerate(models.items()):
        seg = Segmenter(model)
        for i, stem in enumerate(args.photos):
            photo, truth = photos[stem], truths[stem]
            alpha = np.asarray(seg.predict_mask(photo))
            said = alpha > 0.5
            iou = (said & truth).sum() / max(1, (said | truth).sum())
            print(f"{stem} {name}: IoU {iou:.3f}")
            ax = axes[i, j]
            ax.imshow(error_picture(photo, alpha, truth))
            ax.set_title(f"{name}: {stem}\nIoU {iou:.3f}", fontsize=8)
            ax.axis("off")
    fig.suptitle("red: person missed   blue: taken as person wrongly", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=85)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
