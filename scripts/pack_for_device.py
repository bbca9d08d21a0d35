"""Pack the training data small enough to travel to a lent GPU machine.

The device tool carries at most 64 MiB (working tree included), and ../shared/data's
persons-train + persons-val + backgrounds come to about 67 MiB as they are (already shrunk to
<= 384 px and stored as optimised JPEGs). Re-encoding the photos at JPEG quality 70 (a photo is
kept as it is where that does not make it smaller) brings them under the limit; masks are
written as 1-bit PNGs (what they already are), without changing any pixel. Output goes to a
git-ignored folder (default `carry/data`) to name in the device run's `carry`;
`scripts/train_on_device.sh` trains on it there:

    python scripts/pack_for_device.py
    # device call: bash scripts/train_on_device.sh w8 :: w16 --set model.width=16   (carry: carry)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent


def pack_jpeg(src: Path, dst: Path, quality: int) -> None:
    with Image.open(src) as im:
        im.convert("RGB").save(dst, "JPEG", quality=quality, optimize=True)
    if dst.stat().st_size >= src.stat().st_size:
        shutil.copy2(src, dst)


def pack_mask(src: Path, dst: Path) -> None:
    # The loaders read a mask as "L" and call >= 128 person; a 1-bit PNG keeps exactly that.
    with Image.open(src) as im:
        person = np.asarray(im.convert("L")) >= 128
    Image.fromarray(person).save(dst, "PNG", optimize=True)


def pack_folder(src: Path, dst: Path, quality: int) -> None:
    """Pack an images/ + masks/ pair folder, or a plain folder of background photos."""
    pairs = (src / "images").is_dir()
    image_dir = src / "images" if pairs else src
    out_images = dst / "images" if pairs else dst
    out_images.mkdir(parents=True, exist_ok=True)
    for path in tqdm(sorted(image_dir.iterdir()), desc=src.name):
        if path.suffix.lower() in {".jpg", ".jpeg"}:
            pack_jpeg(path, out_images / path.name, quality)
        elif path.is_file():
            shutil.copy2(path, out_images / path.name)
    if pairs:
        (dst / "masks").mkdir(parents=True, exist_ok=True)
        for path in tqdm(sorted((src / "masks").iterdir()), desc=f"{src.name} masks"):
            pack_mask(path, dst / "masks" / f"{path.stem}.png")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "carry" / "data")
    p.add_argument("--quality", type=int, default=70, help="JPEG quality of the re-encoded photos")
    p.add_argument("--sets", nargs="+", default=["persons-train", "persons-val", "backgrounds"])
    args = p.parse_args()
    for name in args.sets:
        if not (args.data / name).is_dir():
            raise SystemExit(
                f"{args.data / name}: not a folder (is ../shared/data beside the repo?)"
            )
        pack_folder(args.data / name, args.out / name, args.quality)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB (the device carries 64 MiB with the working tree)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
