"""Would dropping unsure blobs from the mask help? (issue 25's clutter taken as person)

    pip install scipy   # its connected-component labelling; not a dependency of personcut
    python benchmarks/try_component_filter.py                    # shipped model
    python benchmarks/try_component_filter.py --model runs/judge/s53.onnx --out s53.json

The model's mistakes on clutter (a bus's wheel, a barrel, a phone) are often separate blobs. A
filter after the network could drop each connected region of the mask (probability over 0.5 at
the working size, the default mode's mirror pass) whose peak probability, size or mean
probability is low. Rules are chosen on the training side (a quarter of persons-train, the 86
COCO training photos, the even half of backdrops-extra) and only then read on persons-val and the
held-out half of backdrops-extra. Scored at the working size (the truth resized to the network's
grid, pooled person IoU; false people: photos with more than 1 % of the grid called person), not
through the guided filter at full size: an estimate of what the filter could move, not a
replacement for `personcut evaluate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from personcut.scoring import MaskFolder, Scores, source_of

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
sys.path.insert(0, str(HERE))

RULES = [  # (least peak probability, least share of the grid, least mean probability)
    (0.0, 0.0, 0.0),
    *[(peak, 0.0, 0.0) for peak in (0.7, 0.8, 0.9, 0.95)],
    *[(0.0, area, 0.0) for area in (0.0005, 0.001, 0.002, 0.005)],
    *[(0.0, 0.0, mean) for mean in (0.6, 0.7, 0.8)],
    (0.9, 0.001, 0.0),
    (0.95, 0.002, 0.0),
]


def kept(prob: np.ndarray, peak: float, area: float, mean: float) -> np.ndarray:
    """The mask (prob > 0.5) less its connected regions (8-connected) that fail the rule."""
    from scipy import ndimage

    mask = prob > 0.5
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    ids = np.arange(1, n + 1)
    keep = (
        (ndimage.maximum(prob, labels, ids) >= peak)
        & (ndimage.sum(mask, labels, ids) >= area * mask.size)
        & (ndimage.mean(prob, labels, ids) >= mean)
    )
    return np.concatenate([[False], keep])[labels]


def probabilities(seg, items, desc: str) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, working-size probability, truth on the same grid or None) per photo."""
    out = []
    for name, load in tqdm(items, desc=desc):
        rgb, mask = load()
        small, _ = seg.prepare(rgb)
        prob = seg._probabilities([small], True)[0]
        truth = None
        if mask is not None:
            truth = np.asarray(Image.fromarray(mask).resize(prob.shape[::-1], Image.NEAREST))
        out.append((name, prob, truth))
    return out


def score(photos, rule) -> dict:
    """False people on person-free photos; else pooled person IoU (by source when several)."""
    if photos[0][2] is None:  # person-free photos
        shares = np.array([kept(p, *rule).mean() for _, p, _ in photos])
        return {"false_people": int((shares > 0.01).sum()), "mean_share": float(shares.mean())}
    scores = Scores()
    for name, prob, truth in photos:
        scores.add(kept(prob, *rule).astype(np.float32), truth, source_of(name, "all"))
    result = scores.result()
    out = {"person_iou": result["person_iou"]}
    if "by_source" in result:
        out["by_source"] = {s: row["person_iou"] for s, row in result["by_source"].items()}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None, help="default: the shipped model")
    p.add_argument("--out", type=Path, default=HERE / "results" / "component_filter.json")
    args = p.parse_args()
    from false_people import held_out

    from personcut.segmenter import Segmenter
    from personcut.train.data.coco import CocoPersonDataset

    seg = Segmenter(args.model, threads=1)

    def folder(root: Path, step: int):
        return [(pair.image.stem, pair.load) for pair in list(MaskFolder.read(root))[::step]]

    def free(offset: int):
        root = DATA / "backdrops-extra"
        return [
            (str(f.relative_to(root)), lambda f=f: (np.asarray(Image.open(f).convert("RGB")), None))
            for f in held_out(root, offset)
        ]

    coco_json = next((DATA / "coco-person-train" / "annotations").glob("*.json"))
    coco = CocoPersonDataset(coco_json, DATA / "coco-person-train" / "images")
    sets = {  # training side first: the rule is chosen there
        "persons-train (every 4th)": folder(DATA / "persons-train", 4),
        "coco-person-train": [
            (f"coco-{i}", lambda i=i: coco.load(i)[:2]) for i in range(len(coco))
        ],
        "negatives, even half": free(0),
        "persons-val": folder(DATA / "persons-val", 1),
        "negatives, held-out half": free(1),
    }
    photos = {name: probabilities(seg, items, name) for name, items in sets.items()}
    rows = []
    for rule in RULES:
        row = {"peak": rule[0], "area": rule[1], "mean": rule[2]}
        row.update({name: score(ph, rule) for name, ph in photos.items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"model": str(seg.path), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
