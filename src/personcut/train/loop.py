"""Training and evaluation as plain functions.

``fit(config)`` runs a whole training; ``train_one_epoch`` and ``evaluate`` are the pieces. The
same code runs as one process or as many under ``torchrun`` (DistributedDataParallel): only
rank 0 logs, plots and writes files, and metrics are reduced across ranks so they equal what one
process would compute.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from personcut.files import write_atomic
from personcut.train.checkpoint import (
    load_checkpoint,
    load_model,
    rng_state,
    save_checkpoint,
    save_safetensors,
    set_rng_state,
)
from personcut.train.config import Config, save_config
from personcut.train.data import build_dataset, read_exclude, skipped_files
from personcut.train.data.common import SUBSTITUTED
from personcut.train.data.scenes import SceneDataset
from personcut.train.data.transforms import (
    EvalTransform,
    PhotoLook,
    TrainTransform,
    person_free_photos,
)
from personcut.train.evaluation import evaluate, make_eval_loader
from personcut.train.losses import segmentation_loss
from personcut.train.metrics import SegmentationMeter
from personcut.train.model import UNet, grown_to
from personcut.train.runtime import (
    Runtime,
    amp_dtype,
    autocast,
    cpu_has_bf16,
    setup_runtime,
    unwrap,
    world_size,
)
from personcut.weights import resolve_model

log = logging.getLogger(__name__)


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LambdaLR factor: linear warm-up from ~0 to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    *,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = segmentation_loss,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
    grad_clip: float = 0.0,
    max_steps: int = 0,
    channels_last: bool = False,
    show_progress: bool = True,
    epoch: int = 0,
    ema: AveragedModel | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, train person IoU / mIoU and the fraction of
    time spent waiting for data (the accelerator's idle share). ``criterion(logits, masks)`` is
    the loss (plain BCE unless the config's weights are bound into ``segmentation_loss``);
    ``ema``, when given, is updated with the weights after every step."""
    model.train()
    meter = SegmentationMeter(device=device)
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
        with autocast(autocast_dtype, device):
            logits = model(images)
        loss = criterion(logits, masks)
        _optimizer_step(model, loss, optimizer, scheduler, scaler, grad_clip, ema)
        loss_sum += loss.detach()
        meter.update(logits.detach(), masks)
        if show_progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")  # .item() syncs with the GPU: not every step
        tick = time.perf_counter()
    if dist.is_initialized():
        dist.all_reduce(loss_sum)
        loss_sum /= dist.get_world_size()
    metrics = meter.compute()
    elapsed = max(time.perf_counter() - start, 1e-9)
    return {
        "loss": float(loss_sum) / max(1, steps),
        "person_iou": metrics["person_iou"],
        "miou": metrics["miou"],
        "data_wait": wait / elapsed,
        # images that failed to decode and were replaced by another (this process's share)
        "decode_failures": float(substituted),
        "images_per_s": steps * loader.batch_size * world_size() / elapsed,
    }


def _optimizer_step(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float,
    ema: AveragedModel | None,
) -> None:
    """Backward, clip, step and schedule one batch; with a GradScaler (fp16) the gradients are
    unscaled before clipping so the clip threshold is in true units."""
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
    if ema is not None:
        ema.update_parameters(unwrap(model))


def build_loaders(config: Config, runtime: Runtime) -> tuple[DataLoader, DataLoader | None]:
    d, t = config.data, config.train
    look = PhotoLook(d.gray_p, d.turn_p, d.exposure_p)
    transform = TrainTransform(
        d.crop_size,
        d.backgrounds,
        d.copy_paste_p,
        d.min_scale,
        d.rotate_degrees,
        look=look,
        closeup_p=d.closeup_p,
        shadow_p=d.shadow_p,  # on the whole photo, before the crop
    )
    exclude = read_exclude(d.exclude) if d.exclude else frozenset()
    train_set = build_dataset(d.train, transform, d.crowd, d.keep_empty, d.min_person_area, exclude)
    if exclude and runtime.is_main:
        log.info("left out of training: the %d images named in %s", len(exclude), d.exclude)
    if d.scene_p or d.negative_p:
        negatives = person_free_photos(d.negatives, d.negatives_half) if d.negatives else None
        train_set = SceneDataset(
            train_set,
            d.backgrounds,
            d.crop_size,
            d.scene_p,
            d.negative_p,
            d.scene_max_people,
            negatives=negatives,
            # made-up scenes are composed at the crop's size: their shadows are cast there
            look=PhotoLook(d.gray_p, d.turn_p, d.exposure_p, d.shadow_p),
            crowd_p=d.scene_crowd_p,
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
        # One image per batch: each is then seen at exactly the size `personcut remove` gives
        # it, not padded to the largest image of its batch.
        val_loader = make_eval_loader(val_set, 1, t.num_workers, runtime, pin)
    return train_loader, val_loader


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


@dataclass
class _Run:
    """What one training run holds between epochs."""

    model: nn.Module  # the bare model (what checkpoints hold)
    train_model: nn.Module  # the same, wrapped for DDP / compile
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    dtype: torch.dtype | None
    channels_last: bool
    start_epoch: int = 0
    history: list[dict[str, Any]] | None = None
    best: float = float("-inf")  # a run without validation scores -loss, which may be < -1
    ema: AveragedModel | None = None  # the weights' moving average (train.ema_decay)
    train_images: int = 0  # the training set's size, kept in checkpoints

    @property
    def kept(self) -> nn.Module:
        """The weights that are validated and written to .safetensors: the average if kept."""
        return self.ema.module if self.ema is not None else unwrap(self.model)


def _fit(
    config: Config, runtime: Runtime, out: Path, resume: str | Path | None, stop_after: int | None
) -> list[dict[str, Any]]:
    t = config.train
    torch.manual_seed(t.seed)
    model = _initial_model(config, runtime, resume)
    train_loader, val_loader = build_loaders(config, runtime)
    _log_data(train_loader, val_loader, runtime)
    images = len(train_loader.dataset)
    run = _prepare_run(config, runtime, model, len(train_loader), images, out, resume)
    end_epoch = t.epochs if stop_after is None else min(t.epochs, run.start_epoch + stop_after)
    for epoch in range(run.start_epoch, end_epoch):
        row, examples = _one_epoch(config, runtime, run, train_loader, val_loader, epoch)
        run.history.append(row)
        score = _score(row)
        is_best = score > run.best
        run.best = max(run.best, score)
        if runtime.is_main:
            _save_epoch(config, run, out, epoch, is_best, examples)
    if runtime.distributed:
        dist.barrier()
    return run.history


def _initial_model(config: Config, runtime: Runtime, resume: str | Path | None) -> UNet:
    """The U-Net from ``train.init``, from ImageNet weights, or (resuming) as built: the
    checkpoint's weights are loaded later."""
    model = UNet.from_config(config.model)
    if config.train.init and not resume:
        init = resolve_model(config.train.init, suffix=".safetensors")
        loaded, _ = load_model(init)
        # A larger Lite encoder or wider decoder levels grow from the trained model
        # (model.deepen, model.widen).
        source = grown_to(loaded, config.model)
        if source is not loaded:
            log.info(
                "grown to %s, decoder levels %s, computing the same function",
                config.model.encoder,
                source.decoder_widths,
            )
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
    if config.train.channels_last:  # faster on CUDA, and ~10% on AVX2 CPUs too
        model = model.to(memory_format=torch.channels_last)
    if runtime.distributed and config.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _log_data(train_loader: DataLoader, val_loader: DataLoader | None, runtime: Runtime) -> None:
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
        backdrops = getattr(train_loader.dataset, "backdrops", None)
        if backdrops is not None:
            log.info(
                "%d person-free photos for made-up scenes, %d of them hard negatives",
                len(backdrops),
                len(train_loader.dataset.negatives),
            )


def _prepare_run(
    config: Config,
    runtime: Runtime,
    model: nn.Module,
    loader_steps: int,
    train_images: int,
    out: Path,
    resume: str | Path | None,
) -> _Run:
    """Optimizer, schedule and mixed precision; restored exactly from ``resume`` if given.
    ``train_images`` (the training set's size) must be what the resumed run trained on."""
    t = config.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = min(t.max_steps_per_epoch or loader_steps, loader_steps)
    total = steps_per_epoch * t.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, max(1, round(t.warmup_epochs * steps_per_epoch)))
    )
    dtype = amp_dtype(t.amp, runtime.device)
    if dtype is not None and runtime.device.type == "cpu" and not cpu_has_bf16():
        log.warning("train.amp bf16 on a CPU without bf16 instructions: steps will be far slower")
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    run = _Run(
        model,
        model,
        optimizer,
        scheduler,
        scaler,
        dtype,
        t.channels_last,
        history=[],
        train_images=train_images,
    )
    if t.ema_decay:
        # Buffers too: the average's BatchNorm statistics must match its own weights.
        run.ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True
        )
    if resume:
        ckpt = load_checkpoint(resume, runtime.device)
        _check_same_run(resume, ckpt, config, train_images)
        model.load_state_dict(ckpt["model"])
        if run.ema is not None:
            if ckpt.get("ema") is None:
                raise ValueError(f"{resume} holds no weight average, but train.ema_decay is set")
            run.ema.module.load_state_dict(ckpt["ema"])
            run.ema.n_averaged.fill_(ckpt["ema_updates"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        run.start_epoch, run.history, run.best = ckpt["epoch"] + 1, ckpt["history"], ckpt["best"]
        set_rng_state(ckpt["rng"])
        if runtime.is_main:
            log.info("resumed from %s at epoch %d", resume, run.start_epoch)
            _repair_outputs(out, ckpt, run.kept, config)
    if runtime.distributed:
        ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
        run.train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if t.compile:
        run.train_model = torch.compile(run.train_model)
    return run


def _check_same_run(resume: str | Path, ckpt: dict, config: Config, train_images: int) -> None:
    """Refuse to resume onto other training data (a folder's files or ``data.exclude``'s list
    changed since the run began: the sampler's order, and so the run, would silently differ);
    warn of any config key that differs from the one the run began with."""
    held = ckpt.get("train_images")  # absent from checkpoints written before it was kept
    if held is not None and held != train_images:
        raise ValueError(
            f"{resume} trained on {held} images, but data.train (less data.exclude) now gives "
            f"{train_images}: restore the data the run began with, or start a new run"
        )

    before, now = ckpt.get("config", {}), config.to_dict()
    changed = [
        f"{section}.{key}"
        for section in sorted(before.keys() | now.keys())
        for key in sorted(before.get(section, {}).keys() | now.get(section, {}).keys())
        if before.get(section, {}).get(key) != now.get(section, {}).get(key)
    ]
    if changed:
        log.warning("resuming %s with config keys changed since it began: %s", resume, changed)


def _one_epoch(
    config: Config,
    runtime: Runtime,
    run: _Run,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    epoch: int,
) -> tuple[dict[str, Any], list]:
    """Train one epoch and validate; returns the history row and example predictions."""
    t = config.train
    # Seeding per epoch (and rank) makes augmentation independent of how the run was split
    # into resumed pieces.
    torch.manual_seed(t.seed * 100003 + epoch * 1009 + runtime.rank)
    train_loader.sampler.set_epoch(epoch)
    row: dict[str, Any] = {"epoch": epoch}
    tr = train_one_epoch(
        run.train_model,
        train_loader,
        run.optimizer,
        run.scheduler,
        runtime.device,
        criterion=partial(
            segmentation_loss,
            dice_weight=t.dice_weight,
            edge_weight=t.edge_weight,
            edge_width=t.edge_width,
            lovasz_weight=t.lovasz_weight,
        ),
        scaler=run.scaler,
        autocast_dtype=run.dtype,
        grad_clip=t.grad_clip,
        max_steps=t.max_steps_per_epoch,
        channels_last=run.channels_last,
        show_progress=runtime.is_main,
        epoch=epoch,
        ema=run.ema,
    )
    row.update({f"train_{k}": v for k, v in tr.items()})
    if tr["decode_failures"] and runtime.is_main:
        log.warning(
            "epoch %d: %d training images failed to decode and were replaced "
            "(see the warnings above for which)",
            epoch,
            tr["decode_failures"],
        )
    row["lr"] = run.scheduler.get_last_lr()[0]
    if runtime.distributed:
        # DDP syncs BatchNorm statistics at the start of each forward, so after the last step
        # every rank holds its own; take rank 0's, the ones the checkpoint will hold.
        kept = [unwrap(run.model)] + ([run.ema.module] if run.ema is not None else [])
        for buffer in (b for m in kept for b in m.buffers()):
            dist.broadcast(buffer, 0)
    if val_loader is None:
        return row, []
    ev = evaluate(
        run.kept,
        val_loader,
        runtime.device,
        groups=val_loader.groups,
        # On a CPU the shipped model runs in fp32: score that, comparable with fp32 runs.
        autocast_dtype=run.dtype if runtime.device.type == "cuda" else None,
        show_progress=runtime.is_main,
        keep=t.sheet_images if runtime.is_main else 0,
    )
    examples = ev.pop("examples", [])
    by_source = ev.pop("by_source", {})
    row.update({f"val_{k}": v for k, v in ev.items()})  # val_images: each counted once
    for g, m in by_source.items():
        row[f"val_{g}_person_iou"] = m["person_iou"]
    return row, examples


def _save_epoch(
    config: Config, run: _Run, out: Path, epoch: int, is_best: bool, examples: list
) -> None:
    """Checkpoints, metrics, curves and the example sheet of an epoch (rank 0)."""
    from personcut.train import plots

    model = run.kept
    ckpt = {
        "model": unwrap(run.model).state_dict(),
        # load_model() reads the average when there is one: it is what was validated.
        "ema": run.ema.module.state_dict() if run.ema is not None else None,
        "ema_updates": int(run.ema.n_averaged) if run.ema is not None else 0,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": epoch,
        "config": config.to_dict(),
        "history": run.history,
        "rng": rng_state(),
        "best": run.best,
        "train_images": run.train_images,  # a resume onto other data is refused
    }
    # last.pt is written last: once it says an epoch is done, that epoch's best.* and metrics
    # row are on disk too, whenever the process is killed.
    if is_best:
        save_checkpoint(out / "best.pt", ckpt)
        save_safetensors(model, out / "best.safetensors", config)
    write_metrics(run.history, out / "metrics.csv")
    save_checkpoint(out / "last.pt", ckpt)
    plots.training_curves(run.history, out / "curves.png")
    if examples:
        plots.prediction_sheet(examples, out / "val_predictions.png")
    row = run.history[-1]
    log.info(
        "epoch %d: %s",
        epoch,
        # 4 significant digits, not decimals: a learning rate of 5e-05 is not 0.0000
        ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)),
    )


def write_metrics(history: list[dict[str, Any]], path: Path) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    write_atomic(path, write)
