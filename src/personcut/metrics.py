"""Jaccard (IoU) through torchmetrics, always reported two ways.

- person IoU: ``BinaryJaccardIndex`` accumulated over the whole set (total intersection over
  total union, not a mean of per-image IoUs);
- 2-class mIoU: ``MulticlassJaccardIndex`` over background and person, averaged; the form the
  reference U-Net's 0.7663 most likely took.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import BinaryJaccardIndex, MulticlassJaccardIndex

from personcut.data.folders import IGNORE


class SegmentationMeter:
    """Accumulates person IoU, 2-class mIoU and mean BCE over batches."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.person = BinaryJaccardIndex(ignore_index=IGNORE).to(device)
        self.two_class = MulticlassJaccardIndex(num_classes=2, ignore_index=IGNORE).to(device)
        self.bce_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.pixels = torch.zeros((), dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits (N, 1, H, W) or (1, H, W); target of the same shape, values 0, 1 or IGNORE."""
        logits, target = logits.float(), target.long()
        hard = (logits > 0).long()
        self.person.update(hard, target)
        self.two_class.update(hard, target)
        valid = target != IGNORE
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, (target == 1).float(), reduction="none"
        )
        self.bce_sum += (bce * valid).sum().double()
        self.pixels += valid.sum().double()

    def compute(self) -> dict[str, float]:
        """The metrics over everything seen, summed over all processes under torchrun
        (torchmetrics syncs its own states; the BCE sums are reduced here)."""
        sums = torch.stack([self.bce_sum, self.pixels])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        return {
            "person_iou": float(self.person.compute()),
            "miou": float(self.two_class.compute()),
            "bce": float(sums[0] / sums[1].clamp_min(1)),
        }
