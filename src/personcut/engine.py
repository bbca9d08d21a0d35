"""Training and evaluation as plain functions.

``fit(config)`` runs a whole training; ``train_one_epoch`` and ``evaluate`` are the pieces. The
same code runs as one process or as many under ``torchrun`` (DistributedDataParallel): only
rank 0 logs, plots and writes files, and metrics are reduced across ranks so they equal what one
process would compute.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from personcut.checkpoint import (
    load_checkpoint,
    load_model,
    rng_state,
    save_checkpoint,
    save_safetensors,
    set_rng_state,
)
from personcut.config import Config, save_config
from personcut.data import build_dataset, skipped_files
from personcut.data.folders import SUBSTITUTED
from personcut.data.scenes import SceneDataset
from personcut.data.transforms import EvalTransform, TrainTransform, eval_collate
from personcut.losses import segmentation_loss
from personcut.metrics import SegmentationMeter
from personcut.model import UNet

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where this process runs and how it talks to the others."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(device: str = "auto") -> Runtime:
    """Join torchrun's process group when launched by it, and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
        # Trained weights and small gradients drift into subnormal floats, which x86 CPUs handle
        # in microcode: a trained width-8 U-Net stepped 2x slower than a fresh one until these
        # were flushed to zero (benchmarks/RESULTS.md). Values that small carry no accuracy.
        torch.set_flush_denormal(True)
    return Runtime(dev, rank, world_size, local_rank)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype on CUDA; CPU trains in fp32 (bf16 autocast is slower on most CPUs)."""
    if device.type != "cuda" or setting == "none":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def unwrap(model: nn.Module) -> UNet:
    """The plain U-Net inside DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LambdaLR factor: linear warm-up from ~0 to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _autocast(dtype: torch.dtype | None, device: torch.device):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    *,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
    dice_weight: float = 0.0,
    grad_clip: float = 0.0,
    max_steps: int = 0,
    channels_last: bool = False,
    show_progress: bool = True,
    epoch: int = 0,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, train person IoU / mIoU and the fraction of
    time spent waiting for data (the accelerator's idle share)."""
    model.train()
    meter = SegmentationMeter(device)
    loss_sum = torch.zeros((), device=device)
    steps = len(loader) if not max_steps else min(max_steps, len(loader))
    wait = 0.0
    start = time.perf_counter()
    tick = start
    bar = tqdm(loader, total=steps, desc=f"train {epoch}", disable=not show_progress, leave=False)
    substituted = 0
    for step, (images, masks, groups) in enumerate(bar):
        if step >= steps:
            break
        substituted += sum(g == SUBSTITUTED for g in groups)
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        wait += time.perf_counter() - tick
        with _autocast(autocast_dtype, device):
            logits = model(images)
        loss = segmentation_loss(logits, masks, dice_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
        meter.update(logits.detach(), masks)
        if show_progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")  # .item() syncs with the GPU: not every step
        tick = time.perf_counter()
    if dist.is_initialized():
        dist.all_reduce(loss_sum)
        loss_sum /= dist.get_world_size()
    metrics = meter.compute()
    elapsed = time.perf_counter() - start
    return {
        "loss": float(loss_sum) / max(1, steps),
        "person_iou": metrics["person_iou"],
        "miou": metrics["miou"],
        "data_wait": wait / max(elapsed, 1e-9),
        # images that failed to decode and were replaced by another (this process's share)
        "decode_failures": float(substituted),
        "images_per_s": steps * loader.batch_size * _world() / max(elapsed, 1e-9),
    }


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


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
    overall = SegmentationMeter(device)
    per_group = {g: SegmentationMeter(device) for g in (groups or [])}
    count = torch.zeros((), device=device)
    examples = []
    for images, masks, sizes, batch_groups in tqdm(
        loader, desc="evaluate", disable=not show_progress, leave=False
    ):
        images = images.to(device, non_blocking=True)
        with _autocast(autocast_dtype, device):
            logits = model(images).float()
        for i, (mask, (h, w), group) in enumerate(zip(masks, sizes, batch_groups, strict=True)):
            mask = mask.to(device)
            full = torch.nn.functional.interpolate(
                logits[i : i + 1, :, :h, :w],
                size=mask.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )[0]
            overall.update(full, mask)
            if group in per_group:
                per_group[group].update(full, mask)
            if len(examples) < keep:
                examples.append((images[i, :, :h, :w].cpu(), mask.cpu(), full.sigmoid().cpu()))
        count += len(masks)
    if dist.is_initialized():
        dist.all_reduce(count)
    result: dict[str, Any] = {**overall.compute(), "images": int(count)}
    if len(per_group) > 1:
        result["by_source"] = {g: m.compute() for g, m in per_group.items()}
    if examples:
        result["examples"] = examples
    return result


def evaluate_segmenter(
    segmenter, dataset: Dataset, groups: list[str] | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Metrics of a :class:`~personcut.inference.Segmenter` (any runtime, the shipped ONNX file
    included) through the path ``personcut remove`` runs: resize, network, guided upsampling to
    full size. ``dataset`` yields untransformed (image, mask, group) items. Same keys as
    :func:`evaluate`."""
    overall = SegmentationMeter("cpu")
    per_group = {g: SegmentationMeter("cpu") for g in (groups or [])}
    for i in tqdm(range(len(dataset)), desc="evaluate", disable=not show_progress, leave=False):
        image, mask, group = dataset[i]
        prob = torch.from_numpy(segmenter.predict_rgb([image])[0])
        logits = torch.logit(prob.clamp(1e-6, 1 - 1e-6))[None]
        target = torch.from_numpy(np.ascontiguousarray(mask))[None]
        overall.update(logits, target)
        if group in per_group:
            per_group[group].update(logits, target)
    result: dict[str, Any] = {**overall.compute(), "images": len(dataset)}
    if len(per_group) > 1:
        result["by_source"] = {g: m.compute() for g, m in per_group.items()}
    return result


def build_loaders(config: Config, runtime: Runtime) -> tuple[DataLoader, DataLoader | None]:
    d, t = config.data, config.train
    train_set = build_dataset(
        d.train,
        TrainTransform(d.crop_size, d.backgrounds, d.copy_paste_p, d.min_scale, d.rotate_degrees),
        d.crowd,
        d.keep_empty,
        d.min_person_area,
    )
    if d.scene_p or d.negative_p:
        train_set = SceneDataset(
            train_set, d.backgrounds, d.crop_size, d.scene_p, d.negative_p, d.scene_max_people
        )
    sampler = DistributedSampler(
        train_set,
        num_replicas=runtime.world_size,
        rank=runtime.rank,
        shuffle=True,
        seed=t.seed,
        drop_last=True,
    )
    pin = runtime.device.type == "cuda"
    train_loader = DataLoader(
        train_set,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=t.num_workers,
        # Workers are re-created each epoch (not persistent) so their seeds come from the
        # per-epoch seed above and a resumed run augments exactly as an unbroken one.
        pin_memory=pin,
        drop_last=True,
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"{len(train_set)} training images give no full batch of {t.batch_size} per process; "
            "lower train.batch_size"
        )
    val_loader = None
    if d.val:
        multiple = 2**config.model.depth
        val_set = build_dataset(d.val, EvalTransform(d.eval_size, multiple), d.crowd, True, 0.0)
        # One image per batch: each is then padded only to a multiple of 2**depth, as in
        # `personcut remove`, instead of to the largest image of its batch.
        val_loader = make_eval_loader(val_set, 1, t.num_workers, runtime, pin)
    return train_loader, val_loader


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


def shipped_weights(name: str = "personcut") -> Path:
    return Path(__file__).parent / "weights" / f"{name}.safetensors"


def resolve_init(init: str) -> Path:
    """train.init: a .pt/.safetensors file, "shipped" (the default model) or a shipped model's
    name ("classic")."""
    if init == "shipped":
        return shipped_weights()
    if not Path(init).exists() and shipped_weights(init).is_file():
        return shipped_weights(init)
    return Path(init)


def fit(
    config: Config, resume: str | Path | None = None, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Train ``config``; returns the per-epoch history.

    Resuming restores model, optimizer, scheduler, scaler, epoch, RNG and history, so the run
    continues exactly. ``stop_after`` ends this invocation after that many epochs (the schedule
    still spans ``train.epochs``), for training in slices on a CPU.
    """
    t = config.train
    runtime = setup_runtime(t.device)
    out = Path(t.out_dir)
    if not runtime.is_main:
        logging.getLogger("personcut").setLevel(logging.WARNING)  # one voice: rank 0's
        return _fit(config, runtime, out, resume, stop_after)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("personcut")
    logger.addHandler(handler)
    try:
        return _fit(config, runtime, out, resume, stop_after)
    finally:
        # Removed even on errors, so a second run in this process logs to its own file only.
        logger.removeHandler(handler)
        handler.close()


def _score(row: dict[str, Any]) -> float:
    """What picks the best epoch: validation person IoU, or minus the training loss."""
    return row.get("val_person_iou", -row["train_loss"])


def _repair_outputs(out: Path, ckpt: dict[str, Any], model: nn.Module, config: Config) -> None:
    """Make metrics.csv and best.* agree with last.pt. Runs written before the epoch's files were
    ordered (last.pt is now written last) could be killed between them, leaving best.* an epoch
    behind and metrics.csv a row short; a resumed run repairs that instead of trusting it."""
    history = ckpt["history"]
    write_metrics(history, out / "metrics.csv")
    scores = [_score(row) for row in history]
    best_epoch = history[scores.index(max(scores))]["epoch"]  # first of ties, as in training
    if best_epoch != ckpt["epoch"]:
        return  # the best weights are an older epoch's: best.pt was written then, before last.pt
    best_path = out / "best.pt"
    held = load_checkpoint(best_path)["epoch"] if best_path.is_file() else None
    if held != best_epoch:
        log.warning(
            "best.pt held epoch %s but epoch %d is the best: rewriting best.*", held, best_epoch
        )
        save_checkpoint(best_path, ckpt)
        save_safetensors(model, out / "best.safetensors", config)


def _fit(
    config: Config, runtime: Runtime, out: Path, resume: str | Path | None, stop_after: int | None
) -> list[dict[str, Any]]:
    from personcut import plots

    t = config.train
    torch.manual_seed(t.seed)

    model = UNet.from_config(config.model)
    if t.init and not resume:
        init = resolve_init(t.init)
        source, _ = load_model(init)
        if source.config != config.model:
            raise ValueError(
                f"train.init {init} has model {source.config}, the config asks for "
                f"{config.model}; set model.* to match"
            )
        model.load_state_dict(source.state_dict())
        log.info("initialised from %s", init)
    elif config.model.pretrained and hasattr(model.encoder, "load_imagenet") and not resume:
        model.encoder.load_imagenet()
        log.info("encoder %s starts from ImageNet weights", config.model.encoder)
    model.to(runtime.device)
    use_cl = t.channels_last  # faster on CUDA, and ~10% on AVX2 CPUs too
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    if runtime.distributed and t.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    train_loader, val_loader = build_loaders(config, runtime)
    skipped = skipped_files(train_loader.dataset)
    if val_loader is not None:
        skipped += skipped_files(val_loader.dataset.dataset)
    if runtime.is_main:
        log.info(
            "%d training images (%d steps/epoch), %s validation images, %d files skipped",
            len(train_loader.dataset),
            len(train_loader),
            len(val_loader.dataset.dataset) if val_loader else 0,
            len(skipped),
        )

    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = min(t.max_steps_per_epoch or len(train_loader), len(train_loader))
    total = steps_per_epoch * t.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, max(1, round(t.warmup_epochs * steps_per_epoch)))
    )
    dtype = amp_dtype(t.amp, runtime.device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    start_epoch, history, best = 0, [], -1.0
    if resume:
        ckpt = load_checkpoint(resume, runtime.device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, history, best = ckpt["epoch"] + 1, ckpt["history"], ckpt["best"]
        set_rng_state(ckpt["rng"])
        if runtime.is_main:
            log.info("resumed from %s at epoch %d", resume, start_epoch)
            _repair_outputs(out, ckpt, model, config)

    train_model: nn.Module = model
    if runtime.distributed:
        ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if t.compile:
        train_model = torch.compile(train_model)

    end_epoch = t.epochs if stop_after is None else min(t.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        # Seeding per epoch (and rank) makes augmentation independent of how the run was split
        # into resumed pieces.
        torch.manual_seed(t.seed * 100003 + epoch * 1009 + runtime.rank)
        train_loader.sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch}
        tr = train_one_epoch(
            train_model,
            train_loader,
            optimizer,
            scheduler,
            runtime.device,
            scaler=scaler,
            autocast_dtype=dtype,
            dice_weight=t.dice_weight,
            grad_clip=t.grad_clip,
            max_steps=t.max_steps_per_epoch,
            channels_last=use_cl,
            show_progress=runtime.is_main,
            epoch=epoch,
        )
        row.update({f"train_{k}": v for k, v in tr.items()})
        if tr["decode_failures"] and runtime.is_main:
            log.warning(
                "epoch %d: %d training images failed to decode and were replaced "
                "(see the warnings above for which)",
                epoch,
                tr["decode_failures"],
            )
        row["lr"] = scheduler.get_last_lr()[0]
        examples = []
        if runtime.distributed:
            # DDP syncs BatchNorm statistics at the start of each forward, so after the last step
            # every rank holds its own; take rank 0's, the ones the checkpoint will hold.
            for buffer in unwrap(model).buffers():
                dist.broadcast(buffer, 0)
        if val_loader is not None:
            ev = evaluate(
                model,
                val_loader,
                runtime.device,
                groups=val_loader.groups,
                autocast_dtype=dtype,
                show_progress=runtime.is_main,
                keep=t.sheet_images if runtime.is_main else 0,
            )
            examples = ev.pop("examples", [])
            by_source = ev.pop("by_source", {})
            ev.pop("images", None)
            row.update({f"val_{k}": v for k, v in ev.items()})
            for g, m in by_source.items():
                row[f"val_{g}_person_iou"] = m["person_iou"]
        history.append(row)
        score = _score(row)
        is_best = score > best
        best = max(best, score)
        if runtime.is_main:
            ckpt = {
                "model": unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch,
                "config": config.to_dict(),
                "history": history,
                "rng": rng_state(),
                "best": best,
            }
            # last.pt is written last: once it says an epoch is done, that epoch's best.* and
            # metrics row are on disk too, whenever the process is killed.
            if is_best:
                save_checkpoint(out / "best.pt", ckpt)
                save_safetensors(unwrap(model), out / "best.safetensors", config)
            write_metrics(history, out / "metrics.csv")
            save_checkpoint(out / "last.pt", ckpt)
            plots.training_curves(history, out / "curves.png")
            if examples:
                plots.prediction_sheet(examples, out / "val_predictions.png")
            log.info(
                "epoch %d: %s",
                epoch,
                ", ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float)),
            )
    if runtime.distributed:
        dist.barrier()
    return history


def write_metrics(history: list[dict[str, Any]], path: Path) -> None:
    from personcut.checkpoint import atomic_write

    keys = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)
