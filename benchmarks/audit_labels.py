"""Which training labels a model disagrees with most: candidates for wrong masks, not proof.

    python benchmarks/audit_labels.py                  # persons-train, the shipped model
    python benchmarks/audit_labels.py --data ../shared/data/persons-train data/pseudo-self22 \\
        --negatives ../shared/data/backdrops-extra --worst 24 --out runs/audit

Each labelled photo is run as ``personcut remove`` runs it (default quality mode) and scored
against its own mask: the mean absolute difference between the model's alpha and the mask over
the pixels the mask does not leave out (``ignore/``), and the person IoU. The top of the list is a
mix: masks that are wrong, conventions of a pack (Clothing Co-Parsing labels only the main
subject, PicsArt counts held objects as person), and hard photos the model really gets wrong. Only
looking tells which, so the script writes a sheet of the worst ones (missed person red, person
said where the mask has none blue) beside ``audit.json`` with every photo's figures; the masks
found wrong go in ``configs/label_errors.txt`` (``data.exclude``).

``--negatives`` adds the person-free photos training uses as hard negatives (every second photo of
each source folder, from the first, as ``data.negatives_half: even`` takes them; the other half is
``benchmarks/false_people.py``'s held-out set): a mask of nobody, so a high figure there is a
photo the model calls person on while training is told it holds nobody.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from personcut.scoring import IGNORE, MaskFolder, Pair, confusion

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(HERE))
from show_errors import error_picture  # noqa: E402  (a sibling script, not a package)


def disagreement(alpha: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mean |alpha - mask| over the pixels not left out, person IoU at alpha 0.5); IoU is 1 where
    neither the mask nor the model has a person. The counts are the scores' own
    (:func:`personcut.scoring.confusion`): unsure pixels are left out as evaluation does."""
    tp, fp, fn = confusion(alpha, mask)[:3]
    iou = float(tp / (tp + fp + fn)) if tp + fp + fn else 1.0
    valid = mask != IGNORE
    return float(np.abs(alpha[valid] - (mask[valid] == 1)).mean()) if valid.any() else 0.0, iou


def load(item: Path | Pair) -> tuple[np.ndarray, np.ndarray]:
    """(photo, mask) of a labelled pair, or of a person-free photo (a mask of nobody)."""
    if isinstance(item, Path):
        with Image.open(item) as im:
            photo = np.asarray(im.convert("RGB"))
        return photo, np.zeros(photo.shape[:2], np.uint8)
    return item.load()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, nargs="+", default=[DATA / "persons-train"])
    p.add_argument("--negatives", type=Path, nargs="*", default=[])
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--worst", type=int, default=24, help="photos on the sheet")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads; default: its own choice")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "audit")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from personcut import Segmenter
    from personcut.train.data.transforms import person_free_photos

    seg = Segmenter(args.model, device="cpu", threads=args.threads)
    jobs: list[tuple[str, str, Path | Pair]] = []  # (name, source, pair or photo path)
    for root in args.data:
        for pair in MaskFolder.read(root):
            jobs.append((f"{root.name}/{pair.image.name}", pair.source, pair))
    for path in person_free_photos(args.negatives, "even") if args.negatives else []:
        jobs.append((f"{path.parent.parent.name}/{path.parent.name}/{path.name}", "negative", path))

    rows = []
    for name, source, item in tqdm(jobs, desc="photos"):
        photo, mask = load(item)
        alpha = np.asarray(seg.predict_mask(photo), np.float32)
        mae, iou = disagreement(alpha, mask)
        rows.append({"photo": name, "source": source, "mae": round(mae, 5), "iou": round(iou, 4)})
    rows.sort(key=lambda r: -r["mae"])

    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    summary = {
        s: {
            "photos": len(rs),
            "mean_mae": round(float(np.mean([r["mae"] for r in rs])), 5),
            "over_0.1": sum(r["mae"] > 0.1 for r in rs),
            "over_0.2": sum(r["mae"] > 0.2 for r in rs),
        }
        for s, rs in sorted(by_source.items())
    }
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"model": seg.path.name, "summary": summary, "photos": rows}
    (args.out / "audit.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    for r in rows[: args.worst]:
        print(f"{r['photo']}: MAE {r['mae']:.3f}, IoU {r['iou']:.3f}")

    # the sheet: the worst photos again (a second pass over a couple of dozen is cheaper than
    # keeping every alpha of thousands in memory)
    worst = rows[: args.worst]
    cols = 6
    lines = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(lines, cols, figsize=(2.4 * cols, 3.0 * lines), squeeze=False)
    items = {name: item for name, _, item in jobs}
    for ax, r in zip(axes.flat, worst, strict=False):
        photo, mask = load(items[r["photo"]])
        alpha = np.asarray(seg.predict_mask(photo), np.float32)
        ax.imshow(error_picture(photo, alpha, mask == 1))
        ax.set_title(f"{r['photo']}\nMAE {r['mae']:.3f} IoU {r['iou']:.3f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(
        "red: person missed   blue: taken as person wrongly (against the mask)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(args.out / "worst.png", dpi=80)
    print(f"wrote {args.out / 'audit.json'} and {args.out / 'worst.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
