"""Image/mask folder pairs: ``images/NAME.jpg`` with ``masks/NAME.png``, matched by file stem.

An optional ``ignore/NAME.png`` beside them marks pixels to leave out of the loss and the metrics
(>= 128: unsure), e.g. where a pseudo-labelling teacher was not confident. The folder is read by
:class:`personcut.scoring.MaskFolder`, the one reader that ``personcut evaluate`` and the
benchmarks use too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from personcut.scoring import MaskFolder
from personcut.train.data.common import load_or_substitute


class FolderDataset(Dataset):
    """Pairs of ``images/`` and ``masks/`` files under ``root`` (with ``source``, only the pairs
    of that source: names starting ``SOURCE-``; without those whose image stem is in
    ``exclude``).

    Pairs whose mask is missing, unreadable or of another size are skipped with a warning and
    listed in ``skipped``. Items are ``(image uint8 HxWx3, mask uint8 HxW, group)`` before the
    transform, or whatever ``transform(image, mask)`` returns, plus the group.
    """

    def __init__(
        self,
        root: str | Path,
        transform=None,
        *,
        source: str | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        # one source's pairs (names starting "coco-"), so a config can weigh it by listing it again
        folder = MaskFolder.read(root, source=source)
        self.root = folder.root
        self.transform = transform
        # pairs whose image stem is in ``exclude`` are left out (labels found wrong)
        self.pairs = [p for p in folder.pairs if p.image.stem not in exclude]
        self.excluded = [p.image.stem for p in folder.pairs if p.image.stem in exclude]
        self.skipped = folder.skipped
        self.colour_masks = folder.colour_masks
        self.items = [(p.image, p.mask, p.source) for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        pair = self.pairs[index]
        return (*pair.load(), pair.source)

    def __getitem__(self, index: int):
        image, mask, group = load_or_substitute(self, index)
        if self.transform is None:
            return image, mask, group
        return (*self.transform(image, mask), group)
