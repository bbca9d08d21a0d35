"""Made-up scenes for training: several people pasted onto a person-free photo, and negatives.

The training packs are skewed toward one central, upright person filling the frame, and a model
trained on them alone marks walls and benches as person and misses groups, people far away and
people lying down. Scenes fill that gap with what the packs lack: 2 to ``max_people`` people, each
from 5 % to 40 % of the frame height, overlapping, sometimes lying (turned by 90 degrees) or cut by
the frame's edge; and photos with nobody in them, whose right answer is an empty mask. A share of
the scenes (``crowd_p``) are crowds instead: 10 to 30 people standing in rows that recede toward
a horizon, from 3 % of the frame height at the back to 30 % at the front, the nearer in front of
the farther (the distant spectators and street crowds the model missed on COCO photos).
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from personcut.scoring import IMAGE_EXTENSIONS
from personcut.train.data.common import load_or_substitute

PERSON_HEIGHT = (0.05, 0.40)
"""Range of a pasted person's height as a share of the frame's height."""
LYING_P = 0.15
"""Probability that a pasted person is turned by 90 degrees."""
CROWD_PEOPLE = (10, 30)
"""Range of the number of people in a crowd scene."""
CROWD_HEIGHT = (0.03, 0.30)
"""A crowd's people: the height of one at the horizon and of one at the frame's bottom edge,
as shares of the frame's height (issue 25's crowds: 10-30 people from 3 % to 30 %)."""


def raw_item(dataset: Dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) of ``index`` before any transform, through ConcatDatasets."""
    while isinstance(dataset, ConcatDataset):
        part = bisect.bisect_right(dataset.cumulative_sizes, index)
        if part:
            index -= dataset.cumulative_sizes[part - 1]
        dataset = dataset.datasets[part]
    image, mask, _group = load_or_substitute(dataset, index)  # a corrupt file: the next one
    return image, mask


class SceneDataset(Dataset):
    """Wraps a training dataset: each item is, with probability ``negative_p``, a crop of a
    person-free photo with an empty mask; with ``scene_p``, a made-up scene; otherwise the
    wrapped item unchanged. People for scenes are cut from the wrapped dataset's own images by
    their masks (pixels left out of the loss are not pasted).

    Items have the wrapped dataset's form: (image float 3xSxS in [0, 1], mask uint8 1xSxS, group).
    """

    def __init__(
        self,
        dataset: Dataset,
        backgrounds: str | Path,
        size: int,
        scene_p: float = 0.3,
        negative_p: float = 0.05,
        max_people: int = 10,
        negatives: list[Path] | None = None,
        look=None,
        crowd_p: float = 0.0,
    ) -> None:
        folder = Path(backgrounds)
        if not folder.is_dir():
            raise FileNotFoundError(f"backgrounds folder {folder} does not exist")
        self.backgrounds = sorted(
            f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.backgrounds:
            raise ValueError(f"backgrounds folder {folder} holds no images")
        # Negatives come from the hard-negative photos when given; scenes use both as backdrops.
        self.negatives = list(negatives or []) or self.backgrounds
        self.backdrops = self.backgrounds + list(negatives or [])
        self.look = look
        self.dataset, self.size = dataset, size
        self.scene_p, self.negative_p, self.max_people = scene_p, negative_p, max_people
        self.crowd_p = crowd_p
        self.colour = v2.Compose(
            [v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3), v2.RandomGrayscale(0.05)]
        )

    # ConcatDataset-like attributes the engine reads (sources, skipped files).
    @property
    def datasets(self) -> list[Dataset]:
        return getattr(self.dataset, "datasets", [self.dataset])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        r = float(torch.rand(()))
        if r < self.negative_p:
            canvas = self._background(self.negatives)
            mask = np.zeros(canvas.shape[:2], np.uint8)
            return (*self._finish(canvas, mask), "negative")
        if r < self.negative_p + self.scene_p:
            return (*self._scene(), "scene")
        return self.dataset[index]

    def _finish(self, canvas: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(canvas.copy()).permute(2, 0, 1)
        msk = torch.from_numpy(mask.copy())[None]
        if self.look is not None:
            img, msk = self.look(img, msk)
        img = self.colour(tv_tensors.Image(img)).as_subclass(torch.Tensor)
        return img.float().div_(255), msk

    def _background(self, pool: list[Path] | None = None) -> np.ndarray:
        """A random square crop of a random photo of ``pool`` (default: backgrounds and
        negatives), at a random scale, as SxSx3 uint8."""
        s = self.size
        pool = pool or self.backdrops
        path = pool[int(torch.randint(len(pool), ()))]
        with Image.open(path) as bg:
            bg.draft("RGB", (s, s))
            bg = bg.convert("RGB")
            # Crop a square of 50-100 % of the short side, then resize to S.
            side = int(min(bg.size) * float(torch.empty(()).uniform_(0.5, 1.0)))
            x0 = int(torch.randint(bg.width - side + 1, ()))
            y0 = int(torch.randint(bg.height - side + 1, ()))
            bg = bg.crop((x0, y0, x0 + side, y0 + side)).resize((s, s), Image.BILINEAR)
            if torch.rand(()) < 0.5:
                bg = bg.transpose(Image.FLIP_LEFT_RIGHT)
            return np.array(bg)

    def _person(self, height: int, lying: bool = True):
        """A random person cut out: (RGB hxwx3 float32, alpha hxw float32, cut sides (top,
        bottom, left, right)), about ``height`` tall; None when the mask holds no person.
        ``lying``: may be turned by 90 degrees (LYING_P)."""
        image, mask = raw_item(self.dataset, int(torch.randint(len(self.dataset), ())))
        ys, xs = np.nonzero(mask == 1)
        if len(ys) < 16:
            return None
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rgb, alpha = image[y0:y1, x0:x1], (mask[y0:y1, x0:x1] == 1).astype(np.uint8) * 255
        # Sides where the person was cut by the photo's frame (a bust, legs out of shot): such a
        # side must meet the new frame's edge too, or the scene shows a floating torso.
        top, bottom = y0 == 0, y1 == mask.shape[0]
        left, right = x0 == 0, x1 == mask.shape[1]
        if lying and torch.rand(()) < LYING_P:
            if torch.rand(()) < 0.5:  # a quarter turn anticlockwise
                rgb, alpha = np.rot90(rgb, 1), np.rot90(alpha, 1)
                top, bottom, left, right = right, left, top, bottom
            else:
                rgb, alpha = np.rot90(rgb, 3), np.rot90(alpha, 3)
                top, bottom, left, right = left, right, bottom, top
        if torch.rand(()) < 0.5:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
            left, right = right, left
        # A lying person can be many times wider than tall: keep every cut-out inside the frame.
        scale = min(height / rgb.shape[0], self.size / rgb.shape[1])
        w = max(1, round(rgb.shape[1] * scale))
        h = max(1, round(rgb.shape[0] * scale))
        # Premultiplied resize: edges blend into the new scene without a rim of the old one.
        a = (
            np.asarray(
                Image.fromarray(np.ascontiguousarray(alpha)).resize((w, h), Image.BILINEAR),
                np.float32,
            )
            / 255.0
        )
        premult = (rgb.astype(np.float32) * (alpha[..., None] / 255.0)).astype(np.float32)
        channels = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(premult[..., c]), "F").resize(
                    (w, h), Image.BILINEAR
                )
            )
            for c in range(3)
        ]
        colour = np.stack(channels, -1) / np.maximum(a, 1e-3)[..., None]
        return np.clip(colour, 0, 255), a, (top, bottom, left, right)

    def _scene(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.size
        canvas = self._background().astype(np.float32)
        mask = np.zeros((s, s), np.uint8)
        # Drawn only when crowds are on, so runs without them see the same random stream.
        if self.crowd_p and torch.rand(()) < self.crowd_p:
            self._crowd(canvas, mask)
        else:
            self._scatter(canvas, mask)
        return self._finish(canvas.round().clip(0, 255).astype(np.uint8), mask)

    def _scatter(self, canvas: np.ndarray, mask: np.ndarray) -> None:
        """2 to ``max_people`` people anywhere, of log-uniform heights (PERSON_HEIGHT), some
        lying, a person cut by its photo's frame meeting this frame's edge."""
        s = self.size
        count = int(torch.randint(2, self.max_people + 1, ()))
        lo, hi = PERSON_HEIGHT
        for _ in range(count):
            # Log-uniform height: as many small far-away people as large near ones.
            share = math.exp(float(torch.empty(()).uniform_(math.log(lo), math.log(hi))))
            cut = self._person(max(4, round(share * s)))
            if cut is None:
                continue
            colour, a, (cut_top, cut_bottom, cut_left, cut_right) = cut
            h, w = a.shape
            # Up to a third of the person may fall outside the frame (cut by the edge).
            top = int(torch.randint(-h // 3, s - 2 * h // 3 + 1, ()))
            left = int(torch.randint(-w // 3, s - 2 * w // 3 + 1, ()))
            if cut_bottom and not cut_top:
                top = s - h
            elif cut_top and not cut_bottom:
                top = 0
            if cut_right and not cut_left:
                left = s - w
            elif cut_left and not cut_right:
                left = 0
            _paste(canvas, mask, colour, a, top, left)

    def _crowd(self, canvas: np.ndarray, mask: np.ndarray) -> None:
        """10-30 upright people whose feet stand between a horizon and a little below the
        frame's bottom edge, each as tall as its distance from the horizon says (CROWD_HEIGHT),
        pasted from the back to the front so the nearer hide the farther."""
        s = self.size
        lo, hi = CROWD_HEIGHT
        horizon = float(torch.empty(()).uniform_(0.25, 0.6)) * s
        count = int(torch.randint(CROWD_PEOPLE[0], CROWD_PEOPLE[1] + 1, ()))
        feet = sorted(float(torch.empty(()).uniform_(horizon, s * 1.1)) for _ in range(count))
        for foot in feet:  # back to front
            near = min(1.0, (foot - horizon) / (s - horizon))
            height = max(4, round((lo + (hi - lo) * near) * s))
            # Standing on the ground wants legs: a bust (cut at the bottom) floats, so up to
            # three draws look for a whole person (most PicsArt portraits are busts).
            for _ in range(3):
                cut = self._person(height, lying=False)
                if cut is not None and not cut[2][1]:
                    break
            if cut is None:
                continue
            colour, a, _ = cut
            h, w = a.shape
            left = int(torch.randint(-w // 3, s - 2 * w // 3 + 1, ()))
            _paste(canvas, mask, colour, a, round(foot) - h, left)


def _paste(
    canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray, a: np.ndarray, top: int, left: int
) -> None:
    """Lay a cut-out person (colour, alpha) over ``canvas`` at (top, left), clipped to the
    frame, and mark it in ``mask`` where its alpha is at least half."""
    s_h, s_w = mask.shape
    h, w = a.shape
    cy0, cx0 = max(0, top), max(0, left)
    cy1, cx1 = min(s_h, top + h), min(s_w, left + w)
    if cy1 <= cy0 or cx1 <= cx0:
        return
    pa = a[cy0 - top : cy1 - top, cx0 - left : cx1 - left, None]
    pc = colour[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
    region = canvas[cy0:cy1, cx0:cx1]
    canvas[cy0:cy1, cx0:cx1] = region * (1 - pa) + pc * pa
    mask[cy0:cy1, cx0:cx1][pa[..., 0] >= 0.5] = 1
