"""Losses on person logits with an ignore value in the target."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from personcut.scoring import IGNORE


def edge_band(target: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` pixels of the person mask's boundary (a 0/1 float map): where the
    dilated and the eroded mask differ. IGNORE pixels count as background here."""
    truth = (target == 1).float()
    k = 2 * width + 1
    dilated = F.max_pool2d(truth, k, stride=1, padding=width)
    eroded = -F.max_pool2d(-truth, k, stride=1, padding=width)
    return dilated - eroded


def bce_loss(
    logits: torch.Tensor, target: torch.Tensor, edge_weight: float = 0.0, edge_width: int = 3
) -> torch.Tensor:
    """Binary cross-entropy averaged over the pixels whose target is not IGNORE.

    With ``edge_weight`` > 0, pixels within ``edge_width`` of the mask's boundary weigh
    ``1 + edge_weight``: they are a few per cent of a photo, so a plain mean lets the network
    settle for soft, rounded edges that cost little loss and much boundary F.
    """
    valid = (target != IGNORE).float()
    per_pixel = F.binary_cross_entropy_with_logits(
        logits.float(), (target == 1).float(), reduction="none"
    )
    weight = valid
    if edge_weight:
        weight = valid * (1 + edge_weight * edge_band(target, edge_width))
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the person class per image, averaged over the batch."""
    valid = (target != IGNORE).float()
    prob = torch.sigmoid(logits.float()) * valid
    truth = (target == 1).float()
    dims = tuple(range(1, prob.ndim))
    inter = (prob * truth).sum(dims)
    total = prob.sum(dims) + truth.sum(dims)
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Lovász hinge of the person class per image, averaged over the batch (Berman, Triki
    and Blaschko, "The Lovász-Softmax loss", CVPR 2018): a convex surrogate whose value at a
    hard prediction is that image's Jaccard loss, so it aims at IoU itself where soft Dice
    aims at a smoothed Dice. IGNORE pixels are left out. Written here rather than taken from a
    library: kornia's has no ignore value and segmentation_models_pytorch would bring a model
    zoo for one function.
    """
    losses = []
    for image_logits, image_target in zip(logits.float(), target, strict=True):
        valid = image_target != IGNORE
        score = image_logits[valid]
        truth = (image_target[valid] == 1).float()
        if score.numel() == 0:
            losses.append(image_logits.sum() * 0)  # keeps the graph; nothing to learn
            continue
        errors = 1 - score * (2 * truth - 1)  # hinge margins: > 0 is wrong or unsure
        errors, order = torch.sort(errors, descending=True)
        ranked = truth[order]
        # The Jaccard loss of the first k pixels counted as errors, for every k; its steps
        # are the weights of the sorted errors (the Lovász extension's gradient).
        people = ranked.sum()
        intersection = people - ranked.cumsum(0)
        union = people + (1 - ranked).cumsum(0)
        jaccard = 1 - intersection / union
        steps = torch.diff(jaccard, prepend=jaccard.new_zeros(1))
        losses.append(torch.dot(F.relu(errors), steps))
    return torch.stack(losses).mean()


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    dice_weight: float = 0.0,
    edge_weight: float = 0.0,
    edge_width: int = 3,
    lovasz_weight: float = 0.0,
) -> torch.Tensor:
    loss = bce_loss(logits, target, edge_weight, edge_width)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(logits, target)
    if lovasz_weight:
        loss = loss + lovasz_weight * lovasz_hinge(logits, target)
    return loss
