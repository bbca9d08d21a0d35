"""The README's before/after pictures: photo, cutout over a checkerboard, mask.

    python scripts/make_examples.py            # writes docs/examples.png with the shipped model

Uses only the light install (ONNX Runtime); rerun whenever the shipped model changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from personcut import Segmenter, remove

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = [ROOT / "examples" / "astronaut.jpg", ROOT / "examples" / "group.jpg"]


def checkerboard(size: tuple[int, int], cell: int = 16) -> Image.Image:
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    board = np.where(((ys // cell) + (xs // cell)) % 2 == 0, 235, 195).astype(np.uint8)
    return Image.fromarray(board).convert("RGB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", help="model file; default: the shipped one")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "examples.png")
    p.add_argument("--height", type=int, default=300)
    args = p.parse_args()
    seg = Segmenter(args.model)
    rows = []
    for path in PHOTOS:
        photo = Image.open(path).convert("RGB")
        cutout = remove(path, segmenter=seg)
        mask = remove(path, segmenter=seg, mask=True).convert("RGB")
        over = checkerboard(photo.size)
        over.paste(cutout, (0, 0), cutout)
        scale = args.height / photo.height
        size = (round(photo.width * scale), args.height)
        rows.append([im.resize(size, Image.LANCZOS) for im in (photo, over, mask)])
    pad, label_h = 8, 24
    width = max(sum(im.width for im in row) + pad * (len(row) + 1) for row in rows)
    height = sum(args.height + pad for _ in rows) + pad + label_h
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = pad
    for title, im in zip(("photo", "cutout (over a checkerboard)", "mask"), rows[0], strict=True):
        draw.text((x + 4, 6), title, fill=(40, 40, 40))
        x += im.width + pad
    y = label_h
    for row in rows:
        x = pad
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width + pad
        y += args.height + pad
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
