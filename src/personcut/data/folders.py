"""Image/mask folder pairs: ``images/NAME.jpg`` with ``masks/NAME.png``, matched by file stem.

An optional ``ignore/NAME.png`` beside them marks pixels to leave out of the loss and the metrics
(>= 128: unsure), e.g. where a pseudo-labelling teacher was not confident.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
IGNORE = 255
"""Mask value for pixels left out of the loss and the metrics."""


def group_of(stem: str, fallback: str) -> str:
    """The source a file belongs to: its name's prefix before "-" (``picsart-0001``), else the
    folder's name. Metrics are broken down by this."""
    return stem.split("-", 1)[0] if "-" in stem else fallback


def _by_stem(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
            files.setdefault(path.stem, path)
    return files


GRAY_MODES = ("1", "L", "I", "I;16", "F")


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


class FolderDataset(Dataset):
    """Pairs of ``images/`` and ``masks/`` files under ``root``.

    Pairs whose mask is missing, unreadable or of another size are skipped with a warning and
    listed in ``skipped``. Items are ``(image uint8 HxWx3, mask uint8 HxW, group)`` before the
    transform, or whatever ``transform(image, mask)`` returns, plus the group.
    """

    def __init__(self, root: str | Path, transform=None) -> None:
        self.root = Path(root)
        image_dir, mask_dir = self.root / "images", self.root / "masks"
        for d in (image_dir, mask_dir):
            if not d.is_dir():
                raise FileNotFoundError(
                    f"{self.root}: expected an images/ and a masks/ folder, {d.name}/ is missing"
                )
        self.transform = transform
        self.skipped: list[str] = []
        masks = _by_stem(mask_dir)
        self.colour_masks: list[str] = []
        ignore_dir = self.root / "ignore"
        self.ignore = _by_stem(ignore_dir) if ignore_dir.is_dir() else {}
        self.items: list[tuple[Path, Path, str]] = []
        for stem, image_path in _by_stem(image_dir).items():
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
                            self.colour_masks.append(str(mask_path))
                except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                    problem = f"cannot be read ({exc})"
            if problem:
                log.warning("skipping %s: %s", image_path, problem)
                self.skipped.append(f"{image_path}: {problem}")
                continue
            self.items.append((image_path, mask_path, group_of(stem, self.root.name)))
        if not self.items:
            raise ValueError(f"{self.root}: no usable image/mask pairs found")
        if self.colour_masks:
            log.warning(
                "%s: %d masks are not grayscale (first: %s); person is read from their alpha, "
                "or else wherever any colour channel is >= 128",
                self.root,
                len(self.colour_masks),
                self.colour_masks[0],
            )

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        image_path, mask_path, group = self.items[index]
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
        mask = load_mask(mask_path)
        ignore_path = self.ignore.get(image_path.stem)
        if ignore_path is not None:
            with Image.open(ignore_path) as im:
                unsure = np.asarray(im.convert("L")) >= 128
            if unsure.shape != mask.shape:
                raise ValueError(
                    f"{ignore_path} is {unsure.shape[1]}x{unsure.shape[0]}, its "
                    f"mask {mask.shape[1]}x{mask.shape[0]}"
                )
            mask[unsure] = IGNORE
        return image, mask, group

    def __getitem__(self, index: int):
        image, mask, group = _load_or_substitute(self, index)
        if self.transform is None:
            return image, mask, group
        return (*self.transform(image, mask), group)


SUBSTITUTED = "substituted"
"""The group of an item that stands in for one that failed to decode. Loader workers are
separate processes: the training loop counts these in the batches it receives."""


def _load_or_substitute(dataset, index: int):
    """Decode item ``index``; if the file turns out corrupt, warn and use the next item instead
    (its group set to SUBSTITUTED, so the failure is counted), so one bad file out of 118k does
    not stop a training run."""
    for attempt in range(len(dataset)):
        i = (index + attempt) % len(dataset)
        try:
            image, mask, group = dataset.load(i)
            return image, mask, SUBSTITUTED if attempt else group
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            name = dataset.items[i][0] if hasattr(dataset, "items") else i
            log.warning("skipping %s: cannot be decoded (%s)", name, exc)
    raise RuntimeError("no item of the dataset could be decoded")


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(image.copy()).permute(2, 0, 1), torch.from_numpy(mask.copy())[None]
