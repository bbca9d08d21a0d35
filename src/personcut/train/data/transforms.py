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


class TrainTransform:
    """Random resized crop, flip, small rotation/scale, copy-paste, colour jitter.

    The crop comes first so the costlier steps work on the small crop: on a 2-core machine the
    loader workers share the cores with training, and every millisecond here is training time.
    """

    def __init__(
        self,
        crop_size: int,
        backgrounds: str | Path | None = None,
        copy_paste_p: float = 0.5,
        min_scale: float = 0.25,
        rotate_degrees: float = 10.0,
    ) -> None:
        self.copy_paste = CopyPaste(backgrounds, copy_paste_p) if backgrounds else None
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
        img, msk = to_tensors(image, mask)
        img, msk = self.geometric(tv_tensors.Image(img), tv_tensors.Mask(msk))
        img, msk = img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)
        if self.copy_paste is not None:
            img, msk = self.copy_paste(img, msk)
        img = self.colour(tv_tensors.Image(img))
        return img.float().div_(255), msk


class EvalTransform:
    """Resize the long side to ``size`` and pad right/bottom to a multiple of ``multiple``, as
    :class:`personcut.segmenter.Segmenter` does, so validation scores the network on exactly what
    ``personcut remove`` feeds it. (Padding to a square instead turned the short side of portrait
    photos into long smeared bands the network never saw in training, and cost ccp person IoU
    0.16.) The mask stays at full size so metrics are measured at the resolution of the labels.
    Returns (image, mask, (h, w)) where (h, w) is the resized image's size inside the padding."""

    def __init__(self, size: int, multiple: int = 16) -> None:
        self.size = size
        self.multiple = multiple

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        img, msk = to_tensors(image, mask)
        h, w = img.shape[-2:]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = v2.functional.resize(img, [nh, nw], antialias=True).float().div_(255)
        m = self.multiple
        ph, pw = -(-nh // m) * m, -(-nw // m) * m
        # Repeat the border rather than pad with black, as the Segmenter does.
        img = F.pad(img[None], (0, pw - nw, 0, ph - nh), mode="replicate")[0]
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
