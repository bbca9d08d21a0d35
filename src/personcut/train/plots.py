"""Pictures: training curves and sheets of predictions beside ground truth (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from personcut.files import write_atomic  # noqa: E402


def _save(fig, path: str | Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)


def training_curves(
    history: list[dict[str, Any]], path: str | Path, stage_starts: tuple[int, ...] = ()
) -> None:
    """Loss and Jaccard (person IoU and 2-class mIoU), train and val, per epoch. For a model
    trained in stages, pass the concatenated history (epochs numbered on) and the first epoch of
    each later stage: a dashed line marks it."""
    epochs = [row["epoch"] + 1 for row in history]
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("train_loss", "train loss"), ("val_bce", "val BCE")):
        if any(key in row for row in history):
            ax_loss.plot(epochs, [row.get(key) for row in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    for key, label in (
        ("train_person_iou", "train person IoU"),
        ("val_person_iou", "val person IoU"),
        ("train_miou", "train 2-class mIoU"),
        ("val_miou", "val 2-class mIoU"),
    ):
        if any(key in row for row in history):
            ax_iou.plot(epochs, [row.get(key) for row in history], marker="o", label=label)
    ax_iou.set(xlabel="epoch", ylabel="Jaccard index", title="Jaccard index")
    ax_iou.legend()
    for ax in (ax_loss, ax_iou):
        ax.grid(alpha=0.3)
        for start in stage_starts:
            ax.axvline(start + 0.5, color="gray", linestyle="--", linewidth=1)
    _save(fig, path)


def prediction_sheet(
    examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], path: str | Path
) -> None:
    """Rows of (image, ground-truth mask, predicted probability, overlay)."""
    rows = len(examples)
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for ax_row, (image, mask, prob) in zip(axes, examples, strict=True):
        h, w = mask.shape[-2:]
        image = torch.nn.functional.interpolate(image[None], (h, w), mode="bilinear")[0]
        img = image.permute(1, 2, 0).clamp(0, 1).numpy()
        p = prob[0].numpy()
        overlay = img * 0.35
        overlay[..., 1] += 0.65 * (p > 0.5)
        for ax, pic, title in zip(
            ax_row,
            (img, mask[0].float().numpy(), p, overlay.clip(0, 1)),
            ("image", "ground truth", "prediction", "overlay"),
            strict=True,
        ):
            ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(title)
            ax.axis("off")
    fig.tight_layout()
    _save(fig, path)
