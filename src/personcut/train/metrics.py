"""Validation metrics during training: the counts of :mod:`personcut.scoring` made on the
device (GPU validation stays on the GPU until the end), summed over processes under torchrun,
then scored by :class:`personcut.scoring.Scores`, the scorer ``personcut evaluate`` and the
benchmarks use. Person IoU is whole-set, mIoU the mean of person and background IoU.
"""

from __future__ import annotations

import torch

from personcut.scoring import COUNTS, EPS, IGNORE, Scores


@torch.no_grad()
def confusion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`personcut.scoring.confusion` in torch: the COUNTS (float64) of ``logits`` against
    ``target`` (same shape, values 0, 1 or IGNORE), all pixels together."""
    logits, target = logits.float(), target.long()
    valid = target != IGNORE
    truth = target == 1
    pred = logits > 0
    tp = (pred & truth).sum()
    fp = (pred & ~truth & valid).sum()
    fn = (~pred & truth).sum()
    pixels = valid.sum()
    # The probabilities clipped as the NumPy scorer clips them, so both give the same BCE.
    prob = torch.sigmoid(logits).clamp(EPS, 1 - EPS)
    bce = -torch.where(truth, prob.log(), (-prob).log1p())[valid].double().sum()
    counts = [tp, fp, fn, pixels - tp - fp - fn]
    return torch.stack([c.double() for c in counts] + [bce, pixels.double()])


class SegmentationMeter:
    """Accumulates the counts per source over batches; :meth:`compute` gives the scores."""

    def __init__(self, groups: list[str] | None = None, device: torch.device | str = "cpu") -> None:
        self.groups = list(groups) if groups else ["all"]
        self.counts = torch.zeros(len(self.groups), len(COUNTS), dtype=torch.float64, device=device)
        self.images = torch.zeros(len(self.groups), dtype=torch.float64, device=device)

    def update(self, logits: torch.Tensor, target: torch.Tensor, group: str | None = None) -> None:
        """One image's (or a batch's) logits and target, counted for ``group`` (a source name
        given at construction; None: the first)."""
        row = self.groups.index(group) if group in self.groups else 0
        self.counts[row] += confusion(logits, target)
        self.images[row] += 1 if logits.dim() < 4 else logits.shape[0]

    def compute(self) -> dict:
        """The scores over everything seen, summed over all processes under torchrun."""
        counts, images = self.counts.clone(), self.images.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(images)
        scores = Scores()
        for group, row, n in zip(self.groups, counts.cpu().numpy(), images.tolist(), strict=True):
            if n:
                scores.add_counts(row, group, int(n))
        return scores.result()
