"""Halos: the fringe of the old background that a cut-out carries onto a new one.

    python benchmarks/bench_halo.py                       # personcut, raw and decontaminated
    python benchmarks/bench_halo.py --tools personcut mediapipe rembg-u2net   # and rivals

Composites whose truth is known: each persons-val person (its mask, edges softened by a
Gaussian of radius 1.5 px, as the true alpha A; its photo's pixels as the person's colour P,
made pure at the edges from the person's interior, since a real photo's edge pixels already
mix in the original background)
laid over a strongly coloured, busy backdrop B1 (a person-free COCO photo from
``backgrounds/`` tinted half-way to a saturated colour): I1 = A P + (1 - A) B1. Each tool cuts
I1 out; its cut-out (colour F, alpha a) is laid over a second, different backdrop B2 and compared
with the person laid over B2 directly, A P + (1 - A) B2. Reported: the mean absolute colour
error (0-255, averaged over channels) in the edge band (where 0 < A < 1, grown by 3 px), and
over the whole photo; and the fringe alone, the same error against a P + (1 - a) B2 with the
tool's own alpha a, so that only the colour a cut-out carries counts, not where its edge lies.
One more row bounds what colour estimation alone can do: personcut's cut-out alpha with colours
decontaminated using the true alpha A (the rest of its fringe is the alpha's own error). With
``--multilevel``, one more: personcut's alpha with colours from pymatting's multilevel
foreground estimator (Germer et al. 2020; ``pip install pymatting``, not a dependency), the
issue's other suggested estimator, against the blur fusion that ships.
Rivals give an alpha only; their cut-outs carry I1's colours, as their own cut-outs do (rembg's
remove() without alpha matting). Picture: benchmarks/results/halo.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
BOUND = "personcut alpha, colours from the true alpha (bound)"
MULTILEVEL = "personcut alpha, pymatting multilevel colours"
TINTS = [(255, 0, 255), (0, 255, 0), (0, 128, 255), (255, 140, 0), (255, 255, 0), (0, 255, 255)]


def composites(data: Path, limit: int | None, split: str = "persons-val", step: int = 1):
    """(name, I1, B2, true alpha, truth over B2) for each ``step``-th photo of ``split``."""
    from personcut.scoring import MaskFolder

    backs = sorted((data / "backgrounds").glob("*.jpg"))
    for k, pair in enumerate(MaskFolder.read(data / split).pairs[::step][:limit]):
        photo, mask = pair.load()
        h, w = mask.shape
        soft = Image.fromarray((mask == 1).astype(np.uint8) * 255).filter(
            ImageFilter.GaussianBlur(1.5)
        )
        alpha = np.asarray(soft, np.float32)[..., None] / 255.0

        b1 = backdrop(backs[k % len(backs)], TINTS[k % len(TINTS)], (w, h))
        b2 = backdrop(backs[(k + 37) % len(backs)], TINTS[(k + 3) % len(TINTS)], (w, h))
        person = pure_colour(photo, mask == 1, alpha[..., 0])
        i1 = np.clip(alpha * person + (1 - alpha) * b1 + 0.5, 0, 255).astype(np.uint8)
        truth = alpha * person + (1 - alpha) * b2
        yield pair.image.stem, i1, b2, alpha[..., 0], truth


def pure_colour(photo: np.ndarray, person: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The person's colour P, pure at the edges: a real photo's edge pixels already mix the
    person with the original background, so in the soft band (and 2 px inside it) the colour
    is extended from the person's interior (alpha-free pixels 3 px inside the mask) by a
    normalised box blur. Elsewhere P is the photo."""
    from personcut.refine import box_mean

    def _box_mean(x: np.ndarray, r: int) -> np.ndarray:  # HxWxC, the guided filter's box
        return box_mean(np.ascontiguousarray(x.transpose(2, 0, 1)), r).transpose(1, 2, 0)

    interior = (
        np.asarray(Image.fromarray(person.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(7)))
        > 0
    )
    colour = photo.astype(np.float32)
    if not interior.any():
        return colour
    weight = interior.astype(np.float32)[..., None]
    filled, done = colour.copy(), interior.copy()
    for r in (2, 4, 8, 16, 32, 64):  # the nearest interior pixels first, wider where none
        num, den = _box_mean(colour * weight, r), _box_mean(weight, r)
        todo = (den[..., 0] > 1e-3) & ~done
        filled[todo] = num[todo] / den[todo]
        done |= todo
        if done.all():
            break
    edge = (alpha > 0) & ~interior
    return np.where(edge[..., None], filled, colour)


def backdrop(path: Path, tint, size: tuple[int, int]) -> np.ndarray:
    """A person-free photo fitted to ``size`` and tinted half-way to ``tint`` (float32)."""
    with Image.open(path) as im:
        fitted = np.asarray(ImageOps.fit(im.convert("RGB"), size), np.float32)
    return fitted * 0.5 + np.array(tint, np.float32) * 0.5


def band_of(alpha: np.ndarray, grow: int = 3) -> np.ndarray:
    edge = (alpha > 0) & (alpha < 1)
    im = Image.fromarray(edge.astype(np.uint8) * 255)
    return np.asarray(im.filter(ImageFilter.MaxFilter(2 * grow + 1))) > 0


def over(cutout: np.ndarray, back: np.ndarray) -> np.ndarray:
    a = cutout[..., 3:4].astype(np.float32) / 255.0
    return a * cutout[..., :3].astype(np.float32) + (1 - a) * back


def score(errors: dict, name: str, cut, i1, alpha, b2, truth, band) -> np.ndarray:
    """Add one photo's edge band, whole photo and fringe errors to ``errors[name]``; returns
    the cut-out laid over the second backdrop."""
    result = over(cut, b2)
    err = np.abs(result - truth).mean(-1)
    row = errors.setdefault(name, {"band": [], "all": [], "fringe": []})
    row["band"].append(float(err[band].mean()))
    row["all"].append(float(err.mean()))
    row["fringe"].append(fringe(cut, i1, alpha, b2, truth, band))
    return result


def fringe(cut, i1, alpha, b2, truth, band) -> float:
    """Colour error in the band against the truth recomposed with the cut-out's own alpha:
    what the carried colour alone costs (0 for a cut-out holding the person's true colour)."""
    a = cut[..., 3:4].astype(np.float32) / 255.0
    true_alpha = alpha[..., None]
    person = (truth - (1 - true_alpha) * b2) / np.maximum(true_alpha, 1e-3)  # P where A > 0
    mine = a * person + (1 - a) * b2
    seen = band & (alpha > 0.05) & (cut[..., 3] > 0)  # where P is known and the cut-out shows
    err = np.abs(over(cut, b2) - mine).mean(-1)
    return float(err[seen].mean()) if seen.any() else 0.0


def rival_alphas(tool: str, images: dict[str, np.ndarray], work: Path) -> dict | str:
    """The tool's alpha for each composite, through compare.py's environments; or why not."""
    import os
    import subprocess

    from compare import venv_for

    py, env, note = venv_for(tool, HERE / ".cache")
    if py is None:
        return note
    folder = work / "composites"
    folder.mkdir(exist_ok=True)
    for name, image in images.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    listing = work / "list.txt"
    listing.write_text("\n".join(str(folder / f"{n}.png") for n in images))
    out = work / tool
    r = subprocess.run(
        [str(py), str(HERE / "rival_worker.py"), tool, str(listing), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if r.returncode:
        return f"worker failed: {r.stderr.strip()[-300:]}"
    return {n: np.asarray(Image.open(out / f"{n}.png")) for n in images}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--tools", nargs="+", default=["personcut"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "halo.json")
    p.add_argument("--multilevel", action="store_true", help="also pymatting's multilevel colours")
    args = p.parse_args()
    if args.multilevel:
        try:
            from pymatting import estimate_foreground_ml
        except ImportError:
            p.error("--multilevel needs pymatting: pip install pymatting")

    from personcut import Segmenter
    from personcut.compose import decontaminate
    from personcut.cutout import CutoutOptions, compose_pixels

    seg = Segmenter(device="cpu")
    modes = {"personcut raw": False, "personcut decontaminated": True}
    errors: dict[str, dict[str, list[float]]] = {}
    items = list(composites(args.data, args.limit))
    samples = {}
    for name, i1, b2, alpha, truth in tqdm(items, desc="halo composites"):
        band = band_of(alpha)
        (found,) = seg.predict_rgb([i1])  # one network run; both modes compose from it
        for mode, decon in modes.items():
            cut = compose_pixels(i1, found, CutoutOptions(decontaminate=decon))
            result = score(errors, mode, cut, i1, alpha, b2, truth, band)
            if len(samples) < 3 or name in samples:
                samples.setdefault(name, {"truth": truth, "band": band})[mode] = result
        # The bound of colour estimation alone: the same cut-out alpha (``cut`` is the last
        # mode's cut-out; both modes share its alpha), its colours estimated from the true
        # alpha. What is left is where the cut-out's own alpha is wrong.
        bound = cut.copy()
        bound[..., :3] = decontaminate(i1, alpha)
        score(errors, BOUND, bound, i1, alpha, b2, truth, band)
        if args.multilevel:  # the same alpha, colours from pymatting's estimator
            ml = cut.copy()
            f = estimate_foreground_ml(i1 / 255.0, cut[..., 3] / 255.0)
            ml[..., :3] = np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
            score(errors, MULTILEVEL, ml, i1, alpha, b2, truth, band)
    with tempfile.TemporaryDirectory() as tmp:
        images = {name: i1 for name, i1, *_ in items}
        for tool in (t for t in args.tools if t != "personcut"):
            alphas = rival_alphas(tool, images, Path(tmp))
            if isinstance(alphas, str):
                print(f"SKIPPED {tool}: {alphas}", file=sys.stderr)
                continue
            for name, i1, b2, alpha, truth in items:
                cut = np.dstack([i1, alphas[name]])
                score(errors, tool, cut, i1, alpha, b2, truth, band_of(alpha))
    result = {
        mode: {
            "edge_band_error": round(float(np.mean(e["band"])), 3),
            "whole_photo_error": round(float(np.mean(e["all"])), 3),
            "fringe_error": round(float(np.mean(e["fringe"])), 3),
            "photos": len(e["band"]),
        }
        for mode, e in errors.items()
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    picture(samples, args.out.with_suffix(".png"))
    return 0


def picture(samples: dict, path: Path) -> None:
    """Zoomed edge crops: truth, raw cut-out and decontaminated, over the second backdrop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["truth", "personcut raw", "personcut decontaminated"]
    fig, axes = plt.subplots(len(samples), 3, figsize=(9, 3 * len(samples)), squeeze=False)
    for row, (name, s) in enumerate(samples.items()):
        ys, xs = np.nonzero(s["band"])
        cy, cx = int(np.median(ys)), int(np.median(xs))
        r = 24
        for col, key in enumerate(columns):
            crop = s[key][max(0, cy - r) : cy + r, max(0, cx - r) : cx + r]
            axes[row, col].imshow(np.clip(crop, 0, 255).astype(np.uint8), interpolation="nearest")
            axes[row, col].set_title(f"{name}: {key}" if col == 0 else key, fontsize=8)
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
