"""A zoomed edge sheet: the sample portrait's hair and shoulders cut out and laid over a
contrasting colour, with the photo's own colours and with decontamination (the default).

    python scripts/make_edge_sheet.py            # writes docs/edges.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# (left, top, size) of the crops in the 512 x 512 sample: hair against the dark backdrop, the
# hair's other side against the flag, a shoulder against the flag
CROPS = {"hair": (150, 20, 96), "hair, flag behind": (270, 40, 96), "shoulder": (330, 250, 96)}
BACKDROP = (0, 200, 255)  # cyan: far from skin, hair and the old background


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "edges.png")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import personcut

    photo = ROOT / "examples" / "astronaut.jpg"
    seg = personcut.Segmenter()
    looks = {
        "photo's colours": personcut.remove(photo, segmenter=seg, decontaminate=False),
        "decontaminated (default)": personcut.remove(photo, segmenter=seg),
    }
    back = Image.new("RGB", (512, 512), BACKDROP)
    composed = {}
    for name, cut in looks.items():
        canvas = back.copy()
        canvas.paste(cut, (0, 0), cut)
        composed[name] = np.asarray(canvas)
    fig, axes = plt.subplots(len(CROPS), 2, figsize=(7, 3.4 * len(CROPS)))
    for row, (title, (x, y, s)) in enumerate(CROPS.items()):
        for col, (name, image) in enumerate(composed.items()):
            ax = axes[row, col]
            ax.imshow(image[y : y + s, x : x + s], interpolation="nearest")
            ax.set_title(f"{title}: {name}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
