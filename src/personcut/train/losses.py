"""Losses on person logits with an ignore value in the target."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from personcut.scoring import IGNORE


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the pixels whose target is not IGNORE."""
    valid = target != IGNORE
    per_pixel = F.binary_cross_entropy_with_logits(
        logits.float(), (target == 1).float(), reduction="none"
    )
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the person class per image, averaged over the batch."""
    valid = (target != IGNORE).float()
    prob = torch.sigmoid(logits.float()) * valid
    truth = (target == 1).float()
    dims = tuple(range(1, prob.ndim))
    inter = (prob * truth).sum(dims)
    total = prob.sum(dims) + truth.sum(dims)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.0
) -> torch.Tensor:
    loss = bce_loss(logits, target)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(logits, target)
    return loss
