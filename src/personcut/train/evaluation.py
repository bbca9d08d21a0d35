"""Evaluation: a torch model on a loader (training validation, ``personcut evaluate`` of a
checkpoint) or a Segmenter on a dataset (the path ``personcut remove`` runs), both scored by
:mod:`personcut.scoring`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from personcut.scoring import Scores
from personcut.train.data.transforms import eval_collate
from personcut.train.metrics import SegmentationMeter
from personcut.train.runtime import Runtime, autocast


def dataset_groups(dataset: Dataset) -> list[str]:
    """The source names (picsart, ccp, coco, ...) present in a dataset, for per-source metrics."""
    parts = getattr(dataset, "datasets", [dataset])
    groups: set[str] = set()
    for part in parts:
        items = getattr(part, "items", [])
        groups |= {item[2] for item in items} if items and len(items[0]) > 2 else {"coco"}
    return sorted(groups)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    groups: list[str] | None = None,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = True,
    keep: int = 0,
) -> dict[str, Any]:
    """Metrics at the labels' full resolution: logits are cropped to the image's area inside the
    padded square and resized bilinearly to the mask's size before comparing.

    Returns person IoU, 2-class mIoU, BCE, the image count and ``by_source`` when the data holds
    more than one source; ``examples`` holds the first ``keep`` (image, mask, prob) triples.
    """
    model.eval()
    meter = SegmentationMeter(groups, device)
    examples = []
    for images, masks, sizes, batch_groups in tqdm(
        loader, desc="evaluate", disable=not show_progress, leave=False
    ):
        images = images.to(device, non_blocking=True)
        with autocast(autocast_dtype, device):
            logits = model(images).float()
        for i, (mask, (h, w), group) in enumerate(zip(masks, sizes, batch_groups, strict=True)):
            mask = mask.to(device)
            full = torch.nn.functional.interpolate(
                logits[i : i + 1, :, :h, :w],
                size=mask.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )[0]
            meter.update(full, mask, group)
            if len(examples) < keep:
                examples.append((images[i, :, :h, :w].cpu(), mask.cpu(), full.sigmoid().cpu()))
    result = meter.compute()
    if examples:
        result["examples"] = examples
    return result


def evaluate_segmenter(
    segmenter, dataset: Dataset, show_progress: bool = True, edges: bool = False
) -> dict[str, Any]:
    """Metrics of a :class:`~personcut.segmenter.Segmenter` (any runtime, the shipped ONNX file
    included) through the path ``personcut remove`` runs: resize, network, guided upsampling to
    full size. ``dataset`` yields untransformed (image, mask, source) items (folders are read by
    :class:`~personcut.scoring.MaskFolder`). Same keys as :func:`evaluate`, and with ``edges``
    the mean boundary F and alpha MAE per image (as ``benchmarks/compare.py`` scores them)."""
    scores = Scores(edges=edges)
    for i in tqdm(range(len(dataset)), desc="evaluate", disable=not show_progress, leave=False):
        image, mask, source = dataset[i]
        scores.add(segmenter.predict_rgb([image])[0], mask, source)
    return scores.result()


def make_eval_loader(
    dataset: Dataset, batch_size: int, num_workers: int, runtime: Runtime, pin: bool = False
) -> DataLoader:
    """Each rank takes every world_size-th image: no padding with repeated images (as
    DistributedSampler would), so the reduced metrics equal a single process's."""
    shard = Subset(dataset, range(runtime.rank, len(dataset), runtime.world_size))
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=eval_collate,
        pin_memory=pin,
    )
    loader.groups = dataset_groups(dataset)  # type: ignore[attr-defined]
    return loader
