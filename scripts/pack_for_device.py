"""Pack the training data small enough to travel to a lent GPU machine.

The device tool carries at most 64 MiB, and that counts the whole working tree: the tracked files
alone are about 44 MiB now (the two shipped models, each as .onnx and .safetensors), which leaves
about 20 MiB for data. ../shared/data's packs come to well over that as they are (persons-train
56 MiB, backdrops-extra 51 MiB), so photos are re-encoded as WebP at quality 50, photos of
people at a long side of 288 px (the recipe trains on 224 px crops), person-free ones at 256, and
masks written as 1-bit PNGs, resized with their photo by nearest neighbour (then >= 128 person,
as the loaders read them). At the defaults the hand-labelled packs and half the negatives come to
about 20 MiB: self-training labels (data/pseudo-self, 3,113 photos) do not fit beside them.
Hard negatives (``backdrops-extra``) can be packed by half
(``--negatives-half even``, the half the recipe trains on), keeping each folder's order so
``data.negatives_half`` is not needed there. The script ends by adding up what would travel
(tracked files + this folder) and fails when it is over the limit.

Output goes to a git-ignored folder (default `carry/data`) to name in the device run's `carry`;
`scripts/train_on_device.sh` trains on it there:

    python scripts/pack_for_device.py
    # device: CONFIG=configs/default_stage8.yaml bash scripts/train_on_device.sh s8 (carry: carry)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from personcut.scoring import IMAGE_EXTENSIONS
from personcut.train.data.transforms import person_free_photos

ROOT = Path(__file__).resolve().parent.parent


LIMIT = 64 * 2**20
"""What the device tool carries in all: tracked and untracked files plus the carried paths."""


def pack_photo(src: Path, dst: Path, long_side: int, quality: int) -> Path:
    """``src`` as WebP at most ``long_side`` px; the original when that is not smaller."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
        out = dst.with_suffix(".webp")
        im.save(out, "WEBP", quality=quality, method=6)
    if out.stat().st_size >= src.stat().st_size and scale >= 1:
        out.unlink()
        out = dst.with_suffix(src.suffix)
        shutil.copy2(src, out)
    return out


def pack_mask(src: Path, dst: Path, size: tuple[int, int]) -> None:
    # The loaders read a mask as "L" and call >= 128 person; a 1-bit PNG keeps exactly that.
    with Image.open(src) as im:
        im = im.convert("L")
        if im.size != size:
            im = im.resize(size, Image.NEAREST)
        person = np.asarray(im) >= 128
    Image.fromarray(person).save(dst, "PNG", optimize=True)


def pack_folder(src: Path, dst: Path, long_side: int, quality: int, half: str | None) -> None:
    """Pack an images/ + masks/ (+ ignore/) pair folder, or a tree of person-free photos."""
    pairs = (src / "images").is_dir()
    image_dir = src / "images" if pairs else src
    if pairs:
        photos = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:  # the photos (or the half of each folder) that data.negatives_half would train on
        photos = person_free_photos([src], half)
    for path in tqdm(photos, desc=src.name):
        target = (dst / "images" if pairs else dst) / path.relative_to(image_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        packed = pack_photo(path, target, long_side, quality)
        if pairs:
            with Image.open(packed) as im:
                size = im.size
            for kind in ("masks", "ignore"):
                mask = src / kind / f"{path.stem}.png"
                if mask.is_file():
                    (dst / kind).mkdir(parents=True, exist_ok=True)
                    pack_mask(mask, dst / kind / mask.name, size)


def travelling_bytes(out: Path) -> tuple[int, int]:
    """(tracked and untracked-not-ignored files of the checkout, ``out``) in bytes."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    tree = sum(
        (ROOT / f.decode()).stat().st_size for f in listed if f and (ROOT / f.decode()).is_file()
    )
    packed = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return tree, packed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "carry" / "data")
    p.add_argument("--quality", type=int, default=50, help="WebP quality of the re-encoded photos")
    p.add_argument("--long-side", type=int, default=288, help="photos of people: long side")
    p.add_argument("--backdrop-side", type=int, default=256, help="person-free photos: long side")
    p.add_argument(
        "--sets",
        nargs="+",
        default=["persons-train", "persons-val", "backgrounds", "backdrops-extra"],
    )
    p.add_argument(
        "--negatives-half",
        choices=["even", "odd"],
        default="even",
        help="pack every second photo of backdrops-extra (the half the recipe trains on)",
    )
    args = p.parse_args()
    if args.out.exists():  # a pack made earlier (other settings, older files): start afresh
        shutil.rmtree(args.out)
    for name in args.sets:
        if not (args.data / name).is_dir():
            raise SystemExit(
                f"{args.data / name}: not a folder (is ../shared/data beside the repo?)"
            )
        half = args.negatives_half if name == "backdrops-extra" else None
        people = (args.data / name / "images").is_dir()
        side = args.long_side if people else args.backdrop_side
        pack_folder(args.data / name, args.out / name, side, args.quality, half)
    tree, packed = travelling_bytes(args.out)
    mib = 2**20
    print(
        f"{args.out}: {packed / mib:.1f} MiB; with the working tree's {tree / mib:.1f} MiB, "
        f"{(tree + packed) / mib:.1f} of the device tool's {LIMIT / mib:.0f} MiB"
    )
    if tree + packed > LIMIT:
        print("too large to travel: pack fewer sets or a lower --quality / --long-side")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
