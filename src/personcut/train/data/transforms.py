"""Paired (image, mask) transforms on torchvision.transforms.v2.

Image and mask always travel together: v2 transforms resize ``tv_tensors.Mask`` with nearest
neighbour and leave it out of colour changes. Empty areas created by rotation are filled with the
ignore value in the mask, so the model is not taught that black corners are background.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from personcut.scoring import IGNORE, IMAGE_EXTENSIONS
from personcut.segmenter import stretched_sides
from personcut.train.data.common import to_tensors


class CopyPaste:
    """Cut the people out with their mask and paste them, at a random scale and place, onto a
    random person-free photo. The training pack is small and portrait-heavy; this shows the model
    people of many sizes against many scenes."""

    def __init__(self, backgrounds: str | Path, p: float = 0.5, scale=(0.35, 1.0)) -> None:
        folder = Path(backgrounds)
        if not folder.is_dir():
            raise FileNotFoundError(f"backgrounds folder {folder} does not exist")
        self.files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise ValueError(f"backgrounds folder {folder} holds no images")
        self.p, self.scale = p, scale

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        if torch.rand(()) >= self.p:
            return image, mask
        _, h, w = image.shape
        index = int(torch.randint(len(self.files), ()))
        with Image.open(self.files[index]) as bg:
            bg.draft("RGB", (w, h))  # JPEG: decode at a reduced scale when the crop is small
            bg = bg.convert("RGB")
            cover = max(w / bg.width, h / bg.height)
            size = (max(w, math.ceil(bg.width * cover)), max(h, math.ceil(bg.height * cover)))
            bg = np.asarray(bg.resize(size, Image.BILINEAR))
        y0 = int(torch.randint(bg.shape[0] - h + 1, ()))
        x0 = int(torch.randint(bg.shape[1] - w + 1, ()))
        canvas = torch.from_numpy(bg[y0 : y0 + h, x0 : x0 + w].copy()).permute(2, 0, 1)
        s = float(torch.empty(()).uniform_(*self.scale))
        ph, pw = max(1, round(h * s)), max(1, round(w * s))
        # Resize colour premultiplied by the person's alpha, so edges blend into the new scene
        # instead of carrying a rim of the old background.
        alpha = (mask == 1).float()[None]
        premult = F.interpolate(
            image[None].float() * alpha, (ph, pw), mode="bilinear", antialias=True
        )[0]
        a = F.interpolate(alpha, (ph, pw), mode="bilinear", antialias=True)[0].clamp(0, 1)
        colour = premult / a.clamp_min(1e-3)
        ignore = F.interpolate((mask == IGNORE).float()[None], (ph, pw), mode="nearest")[0]
        top = int(torch.randint(h - ph + 1, ()))
        left = int(torch.randint(w - pw + 1, ()))
        region = canvas[:, top : top + ph, left : left + pw].float()
        canvas[:, top : top + ph, left : left + pw] = (
            (region * (1 - a) + colour * a).round().clamp(0, 255).to(torch.uint8)
        )
        label = (a >= 0.5).to(mask.dtype)
        label[(ignore > 0) & (label == 0)] = IGNORE
        new_mask = torch.zeros_like(mask)
        new_mask[:, top : top + ph, left : left + pw] = label
        return canvas, new_mask


def person_free_photos(folders: list[str | Path], half: str | None = None) -> list[Path]:
    """The image files under ``folders`` (in subfolders too), sorted per folder; with ``half``
    ("even"/"odd") every second one of each folder."""
    files: list[Path] = []
    for root in folders:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"negatives folder {root} does not exist")
        by_folder: dict[Path, list[Path]] = {}
        for f in sorted(root.rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                by_folder.setdefault(f.parent, []).append(f)
        for group in by_folder.values():
            files += group if half is None else group[(0 if half == "even" else 1) :: 2]
    if not files:
        raise ValueError(f"no images in the negatives folders {folders}")
    return files


class PhotoLook:
    """What cameras and old prints do to photos that the training packs rarely show: grayscale
    and sepia, a lost EXIF orientation (turned by 90, 180 or 270 degrees), strong under- and
    over-exposure and backlight (the people dark against a bright background), and the people's
    own cast shadows in hard sunlight (see :func:`cast_shadow`). On uint8 (3, S, S) images with
    their (1, S, S) masks."""

    def __init__(
        self,
        gray_p: float = 0.0,
        turn_p: float = 0.0,
        exposure_p: float = 0.0,
        shadow_p: float = 0.0,
    ) -> None:
        self.gray_p, self.turn_p, self.exposure_p = gray_p, turn_p, exposure_p
        self.shadow_p = shadow_p

    def __call__(self, img: torch.Tensor, msk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The shadow first: it is part of the scene, which the camera faults below then affect.
        if self.shadow_p and torch.rand(()) < self.shadow_p:
            img = cast_shadow(img, msk)
        if self.turn_p and torch.rand(()) < self.turn_p:
            k = int(torch.randint(1, 4, ()))
            img, msk = torch.rot90(img, k, (1, 2)), torch.rot90(msk, k, (1, 2))
        if self.exposure_p and torch.rand(()) < self.exposure_p:
            img = self._exposure(img.float(), msk).round().clamp(0, 255).to(torch.uint8)
        if self.gray_p and torch.rand(()) < self.gray_p:
            luma = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).float()
            tint = (1.0, 1.0, 1.0) if torch.rand(()) < 0.5 else (1.07, 0.95, 0.78)  # sepia
            img = torch.stack([luma * t for t in tint]).round().clamp(0, 255).to(torch.uint8)
        return img.contiguous(), msk.contiguous()

    @staticmethod
    def _exposure(img: torch.Tensor, msk: torch.Tensor) -> torch.Tensor:
        kind = int(torch.randint(3, ()))
        if kind == 0:  # under-exposed: a gamma that crushes the shadows
            return 255.0 * (img / 255.0) ** float(torch.empty(()).uniform_(1.8, 3.0))
        if kind == 1:  # over-exposed: a gain that clips the highlights
            return img * float(torch.empty(()).uniform_(1.6, 2.6))
        # backlit: the people in shadow, what is behind them bright
        person = (msk == 1).float()
        dark = float(torch.empty(()).uniform_(0.15, 0.4))
        bright = float(torch.empty(()).uniform_(1.3, 1.9))
        return img * (person * dark + (1 - person) * bright)


def cast_shadow(img: torch.Tensor, msk: torch.Tensor) -> torch.Tensor:
    """The people's shadow in hard light, on the ground or on a wall behind them, darkening the
    background only; the mask is unchanged (a shadow is background). Fashion and street photos
    in sun show them, and the model took them as person (CCP's worst boundaries in persons-val,
    looked at one by one in the twenty-third session). Ground: the people's silhouette flipped
    at their lowest row, squashed to 20-70 % and sheared; wall: the silhouette shifted sideways.
    Edges blurred by 0.5-4 px, darkened to 35-75 % with a slight blue cast (skylight)."""
    person = (msk[0] == 1).float()
    rows = torch.nonzero(person.any(1))
    if len(rows) < 4:
        return img
    size_y, size_x = person.shape
    ys, xs = torch.meshgrid(
        torch.arange(size_y, dtype=torch.float32),
        torch.arange(size_x, dtype=torch.float32),
        indexing="ij",
    )
    uniform = lambda lo, hi: float(torch.empty(()).uniform_(lo, hi))  # noqa: E731
    if torch.rand(()) < 0.6:  # on the ground, from the feet (the lowest person row)
        foot = float(rows[-1])
        below = ys - foot
        src_y = foot - below / uniform(0.2, 0.7)
        src_x = xs - uniform(-1.5, 1.5) * below
        inside = below >= 0
    else:  # on a wall behind: the silhouette moved sideways and a little up or down
        side = 1 if torch.rand(()) < 0.5 else -1
        src_x = xs - side * uniform(0.05, 0.3) * size_x
        src_y = ys - uniform(-0.08, 0.08) * size_y
        inside = torch.ones_like(ys, dtype=torch.bool)
    grid = torch.stack([src_x / (size_x - 1) * 2 - 1, src_y / (size_y - 1) * 2 - 1], -1)
    shadow = F.grid_sample(person[None, None], grid[None], align_corners=True)[0]
    shadow = shadow * inside
    sigma = uniform(0.5, 4.0)
    shadow = v2.functional.gaussian_blur(shadow, [2 * math.ceil(3 * sigma) + 1] * 2, [sigma] * 2)
    shadow = shadow * (1 - person)  # the people stand in front of their shadow
    keep = uniform(0.35, 0.75)
    tint = torch.tensor([0.94, 0.97, 1.06])[:, None, None]
    dark = 1 - shadow * (1 - keep * tint)
    return (img.float() * dark).round().clamp(0, 255).to(torch.uint8)


def closeup(
    image: np.ndarray, mask: np.ndarray, rng: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A crop around one person pixel, 25-55 % of the photo's short side: the person fills or
    overflows the frame. Unchanged when the mask holds no person."""
    ys, xs = np.nonzero(mask == 1)
    if len(ys) < 16:
        return image, mask
    i = int(torch.randint(len(ys), (), generator=rng))
    h, w = mask.shape
    side = max(16, int(min(h, w) * float(torch.empty(()).uniform_(0.25, 0.55))))
    top = min(max(0, ys[i] - side // 2), h - side)
    left = min(max(0, xs[i] - side // 2), w - side)
    return image[top : top + side, left : left + side], mask[top : top + side, left : left + side]


class TrainTransform:
    """Cast shadow, random resized crop, flip, small rotation/scale, copy-paste, photo looks,
    colour jitter.

    The crop comes early so the costlier steps work on the small crop: on a 2-core machine the
    loader workers share the cores with training, and every millisecond here is training time.
    Only the cast shadow runs before it, on the whole photo (about 5 ms at 384 px, and only in
    ``shadow_p`` of the samples), because the ground under the feet is what a crop cuts off.
    """

    def __init__(
        self,
        crop_size: int,
        backgrounds: str | Path | None = None,
        copy_paste_p: float = 0.5,
        min_scale: float = 0.25,
        rotate_degrees: float = 10.0,
        look: PhotoLook | None = None,
        closeup_p: float = 0.0,
        shadow_p: float = 0.0,
    ) -> None:
        self.copy_paste = CopyPaste(backgrounds, copy_paste_p) if backgrounds else None
        self.look, self.closeup_p, self.shadow_p = look, closeup_p, shadow_p
        self.geometric = v2.Compose(
            [
                v2.RandomResizedCrop(crop_size, scale=(min_scale, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomApply(
                    [
                        v2.RandomAffine(
                            degrees=rotate_degrees,
                            scale=(0.9, 1.1),
                            fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE},
                        )
                    ],
                    p=0.5,
                ),
            ]
        )
        # No hue jitter: it is by far the slowest colour op, and skin hue is worth keeping.
        self.colour = v2.Compose(
            [v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3), v2.RandomGrayscale(0.05)]
        )

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.closeup_p and torch.rand(()) < self.closeup_p:
            image, mask = closeup(image, mask)
        img, msk = to_tensors(image, mask)
        # On the whole photo, where the feet and the ground below them still are: cast on the
        # crop, two ground shadows in three fell outside it (stage 40).
        if self.shadow_p and torch.rand(()) < self.shadow_p:
            img = cast_shadow(img, msk)
        img, msk = self.geometric(tv_tensors.Image(img), tv_tensors.Mask(msk))
        img, msk = img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)
        if self.copy_paste is not None:
            img, msk = self.copy_paste(img, msk)
        if self.look is not None:
            img, msk = self.look(img, msk)
        img = self.colour(tv_tensors.Image(img))
        return img.float().div_(255), msk


class EvalTransform:
    """Resize the long side to ``size``, each side stretched to a multiple of ``multiple`` (no
    padding), as :class:`personcut.segmenter.Segmenter` does, so validation scores the network
    on exactly what ``personcut remove`` feeds it. (Padding to a square turned the short side of
    portrait photos into long smeared bands the network never saw in training, and cost ccp
    person IoU 0.16; even the few rows up to the multiple cost 0.006.) The mask stays at full
    size so metrics are measured at the resolution of the labels. Returns (image, mask, (h, w)),
    (h, w) the resized image's size (inside any padding ``eval_collate`` adds)."""

    def __init__(self, size: int, multiple: int = 16) -> None:
        self.size = size
        self.multiple = multiple

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        img, msk = to_tensors(image, mask)
        h, w = img.shape[-2:]
        scale = self.size / max(h, w)
        # Sides stretched to the multiple, not padded up to it, as the Segmenter does.
        nh, nw = stretched_sides(h * scale, w * scale, self.multiple)
        img = v2.functional.resize(img, [nh, nw], antialias=True).float().div_(255)
        return img, msk, (nh, nw)


def eval_collate(batch):
    """Pad the images to the largest in the batch (repeating the border) and stack them; keep the
    full-size masks as a list (their sizes differ). With one image per batch nothing is added, and
    the network sees each image exactly as ``personcut remove`` does."""
    ph = max(b[0].shape[-2] for b in batch)
    pw = max(b[0].shape[-1] for b in batch)
    images = torch.stack(
        [
            F.pad(b[0][None], (0, pw - b[0].shape[-1], 0, ph - b[0].shape[-2]), mode="replicate")[0]
            for b in batch
        ]
    )
    return images, [b[1] for b in batch], [b[2] for b in batch], [b[3] for b in batch]
