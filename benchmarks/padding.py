"""How the photo is fitted to the network's stride: stretched (what ships) against padded.

    python benchmarks/padding.py                                # shipped model, persons-val
    python benchmarks/padding.py --ways stretch pad-edge --quality fast --out x.json

``--quality frame`` (the default) is one pass at the working size: ``balanced`` before the
eighteenth session, when these figures were made.

The network needs sides that are a multiple of 32. A 4:3 photo at the working size 320 is
320x240: until the thirteenth session the Segmenter padded it to 320x256 by repeating the last
row 16 times (``pad-edge``); the network, trained on square crops that are never padded, reads
that band badly, and the band is where full-body and portrait photos have their feet and chest.
Each way here feeds the network an input of the same size, so they cost the same:

- ``stretch``: each side resized up to the next multiple (what ships, `stretched_sides`)
- ``squeeze``: each side resized to the nearest multiple (down by up to half a multiple)
- ``pad-edge`` / ``pad-grey`` / ``pad-mirror``: resized to the working size, then padded
  right and bottom with the border repeated / mid-grey / the photo mirrored

Scored as ``personcut evaluate --edges`` scores (person IoU over the set and per source,
boundary F, alpha MAE), on persons-val by default: use it to compare ways, not to tune to it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "persons-val"
WAYS = ("stretch", "squeeze", "pad-edge", "pad-grey", "pad-mirror")


def segmenter_for(way: str, model: str | None, quality: str):
    """A Segmenter that fits photos to the stride ``way`` (one-pass modes: fast, frame)."""
    from PIL import Image

    from personcut import refine
    from personcut.segmenter import PASSES, Segmenter, pass_sizes

    if len(PASSES[quality][0]) > 1 or PASSES[quality][1]:
        raise ValueError(f"padding compares one-pass modes (fast, frame), not {quality!r}")
    seg = Segmenter(model, device="cpu", quality=quality)
    if way == "stretch":
        return seg

    def squeezed(rgb, image=None, size=None):
        m = seg.info.multiple
        h, w = rgb.shape[:2]
        s = (size or seg.info.working_size) / max(h, w)
        nh, nw = (max(m, round(x * s / m) * m) for x in (h, w))
        small = (image or Image.fromarray(rgb)).resize((nw, nh), Image.BILINEAR)
        return np.asarray(small), (nh, nw)

    def padded(rgbs, guided=True, quality=None):
        mode = {"pad-edge": "edge", "pad-grey": "constant", "pad-mirror": "reflect"}[way]
        extra = {"constant_values": 128} if way == "pad-grey" else {}
        (size,) = pass_sizes(seg.info.working_size, quality or seg.quality)
        m = seg.info.multiple
        out = []
        for rgb in rgbs:
            image = Image.fromarray(rgb)
            h, w = rgb.shape[:2]
            nh, nw = max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))
            small = np.asarray(image.resize((nw, nh), Image.BILINEAR))
            pad = ((0, -(-nh // m) * m - nh), (0, -(-nw // m) * m - nw), (0, 0))
            batch = seg.to_batch([np.pad(small, pad, mode=mode, **extra)])
            logit = seg.logits(batch)[0, 0, :nh, :nw].astype(np.float32)
            prob = 1.0 / (1.0 + np.exp(-logit))  # the padded band cropped off
            out.append(refine.to_full_size(prob, small, image, seg.alpha_levels, guided, seg.guide))
        return out

    if way == "squeeze":
        seg.prepare = squeezed
    else:
        seg.predict_rgb = padded
    return seg


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--quality", default="frame", help="fast or frame (one pass, no mirror)")
    p.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()

    from personcut.train.data import build_dataset
    from personcut.train.evaluation import evaluate_segmenter

    dataset = build_dataset([str(args.data)], None, crowd="ignore")
    rows = {}
    print("| way | person IoU | boundary F | alpha MAE | per source: person IoU / boundary F |")
    print("| --- | --- | --- | --- | --- |")
    for way in args.ways:
        seg = segmenter_for(way, args.model, args.quality)
        r = evaluate_segmenter(seg, dataset, edges=True)
        rows[way] = {
            "person_iou": round(r["person_iou"], 4),
            "boundary_f": round(r["boundary_f"], 4),
            "alpha_mae": round(r["mae"], 4),
            "by_source": {
                k: {key: round(v[key], 4) for key in ("person_iou", "boundary_f")}
                for k, v in r["by_source"].items()
            },
        }
        row = rows[way]
        per = ", ".join(
            f"{k} {v['person_iou']:.4f} / {v['boundary_f']:.4f}"
            for k, v in row["by_source"].items()
        )
        print(
            f"| {way} | {row['person_iou']:.4f} | {row['boundary_f']:.4f} | "
            f"{row['alpha_mae']:.4f} | {per} |",
            flush=True,
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"model": args.model or "personcut", "quality": args.quality, "ways": rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
