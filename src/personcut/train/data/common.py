"""What the datasets share: standing in for a corrupt file, and arrays to tensors."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

SUBSTITUTED = "substituted"
"""The group of an item that stands in for one that failed to decode. Loader workers are
separate processes: the training loop counts these in the batches it receives."""


def load_or_substitute(dataset, index: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``dataset.load(index)``; if the file turns out corrupt, warn and use the next item instead
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
