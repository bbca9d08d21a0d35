"""Scoring person masks, in one place: the reader of mask folders and the scorer used by
``personcut evaluate``, training validation and the benchmarks. NumPy and Pillow only, so
benchmarks of rival tools can score without torch.

A labelled folder holds ``images/NAME.jpg`` with ``masks/NAME.png`` (matched by stem) and an
optional ``ignore/NAME.png`` marking unsure pixels (>= 128), which count for nothing. A file's
source (picsart, ccp, coco, ...) is its name's prefix before "-"; scores are given per source.

Scores are whole-set, not means of per-image scores:
- person IoU: total intersection over total union of the person class;
- mIoU: the mean of person and background IoU (the 2-class form the reference U-Net's 0.7663
  most likely took);
- BCE: mean binary cross-entropy of the probabilities over the scored pixels;
and, with ``edges=True``, the mean per image of the boundary F-score (tolerance 0.75 % of the
diagonal) and of the alpha's mean absolute error against the mask. torchmetrics'
``BinaryJaccardIndex``/``MulticlassJaccardIndex`` give the same IoUs (tests/test_scoring.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
IGNORE = 255
"""Mask value for pixels left out of the loss and the metrics."""
GRAY_MODES = ("1", "L", "I", "I;16", "F")
COUNTS = ("tp", "fp", "fn", "tn", "bce_sum", "pixels")
"""What :class:`Scores` adds up per source (pixels: the scored ones)."""
EPS = 1e-6
"""Probabilities are clipped to [EPS, 1 - EPS] for the BCE."""


def source_of(stem: str, fallback: str) -> str:
    """The source a file belongs to: its name's prefix before "-" (``picsart-0001``), else
    ``fallback`` (the folder's name)."""
    return stem.split("-", 1)[0] if "-" in stem else fallback


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem (the first in name order when two share one)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            files.setdefault(path.stem, path)
    return files


def load_mask(path: Path) -> np.ndarray:
    """A mask file as uint8 {0, 1}: values at or above 128 are person.

    Gray masks are read as they are. A mask with transparency is read from its alpha (a cutout
    used as a mask). A mask coded in colour (person red on black, a palette) has person wherever
    any channel is at or above 128: read as gray, pure red (luma 76) would be background.
    """
    with Image.open(path) as im:
        if im.mode in GRAY_MODES:
            return (np.asarray(im.convert("L")) >= 128).astype(np.uint8)
        rgba = np.asarray(im.convert("RGBA"))
    if rgba[..., 3].min() < 255:
        return (rgba[..., 3] >= 128).astype(np.uint8)
    return (rgba[..., :3].max(axis=2) >= 128).astype(np.uint8)


@dataclass(frozen=True)
class Pair:
    """One labelled photo of a folder."""

    image: Path
    mask: Path
    source: str
    ignore: Path | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(HxWx3 uint8 RGB, HxW uint8 mask: 0, 1 or IGNORE)."""
        with Image.open(self.image) as im:
            image = np.asarray(im.convert("RGB"))
        mask = load_mask(self.mask)
        if self.ignore is not None:
            with Image.open(self.ignore) as im:
                unsure = np.asarray(im.convert("L")) >= 128
            if unsure.shape != mask.shape:
                raise ValueError(
                    f"{self.ignore} is {unsure.shape[1]}x{unsure.shape[0]}, its "
                    f"mask {mask.shape[1]}x{mask.shape[0]}"
                )
            mask[unsure] = IGNORE
        return image, mask


@dataclass
class MaskFolder:
    """The usable pairs of an ``images/`` + ``masks/`` (+ ``ignore/``) folder.

    Pairs whose mask is missing, unreadable or of another size are skipped with a warning and
    listed in ``skipped``; masks that are not grayscale are listed in ``colour_masks``. With
    ``source``, only that source's pairs (names starting ``SOURCE-``) and its files' problems.
    """

    root: Path
    pairs: list[Pair]
    skipped: list[str]
    colour_masks: list[str]

    @classmethod
    def read(cls, root: str | Path, *, source: str | None = None) -> MaskFolder:
        root = Path(root)
        image_dir, mask_dir = root / "images", root / "masks"
        for d in (image_dir, mask_dir):
            if not d.is_dir():
                raise FileNotFoundError(
                    f"{root}: expected an images/ and a masks/ folder, {d.name}/ is missing"
                )
        masks = files_by_stem(mask_dir)
        ignore_dir = root / "ignore"
        ignores = files_by_stem(ignore_dir) if ignore_dir.is_dir() else {}
        pairs, skipped, colour = [], [], []
        others = 0  # images of other sources: tells 'no such source' from 'none usable'
        for stem, image_path in files_by_stem(image_dir).items():
            pair_source = source_of(stem, root.name)
            if source not in (None, pair_source):
                others += 1
                continue
            mask_path = masks.get(stem)
            problem = None
            if mask_path is None:
                problem = "has no mask in masks/"
            else:
                try:  # headers only: cheap enough to check every pair up front
                    with Image.open(image_path) as im, Image.open(mask_path) as mk:
                        if im.size != mk.size:
                            problem = (
                                f"is {im.size[0]}x{im.size[1]} but its mask is "
                                f"{mk.size[0]}x{mk.size[1]}"
                            )
                        elif mk.mode not in GRAY_MODES:
                            colour.append(str(mask_path))
                except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                    problem = f"cannot be read ({exc})"
            if problem:
                log.warning("skipping %s: %s", image_path, problem)
                skipped.append(f"{image_path}: {problem}")
                continue
            pairs.append(Pair(image_path, mask_path, pair_source, ignores.get(stem)))
        if not pairs and source is not None and others:
            raise FileNotFoundError(f"{root}: no image/mask pairs whose names start with {source}-")
        if not pairs:
            raise ValueError(f"{root}: no usable image/mask pairs found")
        if colour:
            log.warning(
                "%s: %d masks are not grayscale (first: %s); person is read from their alpha, "
                "or else wherever any colour channel is >= 128",
                root,
                len(colour),
                colour[0],
            )
        return cls(root, pairs, skipped, colour)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def confusion(prob: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The :data:`COUNTS` of one image: ``prob`` (HxW float person probability, person where
    > 0.5), ``target`` (HxW 0, 1 or IGNORE)."""
    valid = target != IGNORE
    truth = target == 1
    pred = prob > 0.5
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth & valid))
    fn = int(np.count_nonzero(~pred & truth))
    pixels = int(np.count_nonzero(valid))
    p = np.clip(prob[valid].astype(np.float64), EPS, 1 - EPS)
    t = truth[valid]
    bce = float(-(np.log(p[t]).sum() + np.log1p(-p[~t]).sum()))
    return np.array([tp, fp, fn, pixels - tp - fp - fn, bce, pixels], np.float64)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: int) -> float:
    """F-score of the two masks' boundaries, a boundary pixel matching within ``tolerance``."""

    def boundary(mask: np.ndarray) -> np.ndarray:  # pixels touching the other class, 3x3
        im = Image.fromarray(mask.astype(np.uint8) * 255)
        grown = np.asarray(im.filter(ImageFilter.MaxFilter(3))) > 0
        shrunk = np.asarray(im.filter(ImageFilter.MinFilter(3))) > 0
        return grown & ~shrunk

    def grown(mask: np.ndarray) -> np.ndarray:
        size = 2 * tolerance + 1
        im = Image.fromarray(mask.astype(np.uint8) * 255)
        return np.asarray(im.filter(ImageFilter.MaxFilter(size))) > 0

    bp, bt = boundary(pred), boundary(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    precision = (bp & grown(bt)).sum() / bp.sum()
    recall = (bt & grown(bp)).sum() / bt.sum()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


class Scores:
    """Adds up what :func:`confusion` counts, overall and per source, and gives the scores."""

    def __init__(self, edges: bool = False) -> None:
        self.edges = edges
        self.counts: dict[str, np.ndarray] = {}
        self.images: dict[str, int] = {}
        self.per_image: dict[str, dict[str, float | str]] = {}

    def add(self, prob: np.ndarray, target: np.ndarray, source: str, name: str = "") -> None:
        """One image: ``prob`` HxW in [0, 1] (an alpha), ``target`` HxW 0, 1 or IGNORE."""
        counts = confusion(prob, target)
        self.add_counts(counts, source)
        if self.edges:
            valid = target != IGNORE
            pred, truth = (prob > 0.5) & valid, target == 1
            tol = max(1, round(0.0075 * np.hypot(*target.shape)))
            tp, fp, fn = counts[:3]
            self.per_image[name or f"#{len(self.per_image)}"] = {
                "iou": float(tp / (tp + fp + fn)) if tp + fp + fn else 1.0,
                "boundary_f": boundary_f(pred, truth, tol),
                # The soft alpha against the hard mask: what a cutout shows, haze and holes too.
                "mae": float(np.abs(prob[valid] - truth[valid]).mean()) if valid.any() else 0.0,
                "source": source,
            }

    def add_counts(self, counts: np.ndarray, source: str, images: int = 1) -> None:
        """Counts already made (training validation makes them on its device)."""
        for key in {"all", source}:  # a set: a source named "all" is counted once
            self.counts[key] = self.counts.get(key, np.zeros(len(COUNTS))) + counts
            self.images[key] = self.images.get(key, 0) + images

    def result(self) -> dict:
        """``person_iou``, ``miou``, ``bce``, ``images`` (and ``boundary_f``, ``mae`` with
        edges) over everything, and ``by_source`` when there is more than one source."""
        out = {key: self._summary(key) for key in self.counts}
        result = out.pop("all", self._summary(None))
        if len(out) > 1:
            result["by_source"] = dict(sorted(out.items()))
        return result

    def _summary(self, key: str | None) -> dict:
        tp, fp, fn, tn, bce, pixels = self.counts.get(key, np.zeros(len(COUNTS)))
        person = tp / (tp + fp + fn) if tp + fp + fn else 0.0
        background = tn / (tn + fp + fn) if tn + fp + fn else 0.0
        row = {
            "person_iou": float(person),
            "miou": float((person + background) / 2),
            "bce": float(bce / max(pixels, 1)),
            "images": self.images.get(key, 0),
        }
        if self.edges:
            mine = [v for v in self.per_image.values() if key in ("all", v["source"])]
            for metric in ("boundary_f", "mae"):
                row[metric] = float(np.mean([v[metric] for v in mine])) if mine else 0.0
        return row
