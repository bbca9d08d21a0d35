"""Checkpoints: plain dicts with explicit keys, written atomically.

``{"model", "optimizer", "scheduler", "scaler", "epoch", "config", "history", "rng", "best"}``;
the config is the resolved :class:`~personcut.train.config.Config` as a dict, so the model can be
rebuilt from the file alone. Weights for shipping go out as safetensors (and ONNX, see export).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personcut.files import write_atomic
from personcut.train.config import Config, ModelConfig
from personcut.train.model import UNet, grown_to


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    # weights_only=False: the file holds RNG states and plain config dicts written by us.
    return torch.load(path, map_location=map_location, weights_only=False)


def save_safetensors(
    model: UNet,
    path: str | Path,
    config: Config | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """Weights only, with the model config (and ``extra`` strings) as safetensors metadata."""
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"model_config": json.dumps(model.config.__dict__)}
    if config is not None:
        meta["config"] = json.dumps(config.to_dict())
    meta.update(extra or {})
    write_atomic(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", raw: bool = False
) -> tuple[UNet, Config]:
    """Rebuild a U-Net from a training checkpoint (.pt) or a safetensors file.

    A .pt of a run with ``train.ema_decay`` holds two sets of weights: the moving average (what
    was validated; returned by default) and the raw ones (``raw=True``)."""
    import json

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "model_config" not in meta:
            raise ValueError(f"{path} has no model_config metadata; was it written by personcut?")
        config = Config.from_dict(json.loads(meta["config"])) if "config" in meta else Config()
        config.model = ModelConfig(**json.loads(meta["model_config"]))
        state = load_file(str(path), device=str(map_location))
    else:
        ckpt = load_checkpoint(path, map_location)
        config = Config.from_dict(ckpt["config"], source=str(path))
        # A run with train.ema_decay validated (and ships) its weights' average.
        state = ckpt["ema"] if ckpt.get("ema") is not None and not raw else ckpt["model"]
    model = UNet.from_config(config.model)
    model.load_state_dict(state)
    return model.eval(), config


def average_models(
    paths: list[str | Path], weights: list[float] | None = None, raw: bool = False
) -> tuple[UNet, Config]:
    """One U-Net whose weights are the (weighted) mean of several models' weights.

    A "model soup" (Wortsman et al., 2022): models fine-tuned from the same starting point lie in
    one basin, so their mean is a model too, often better than each, at no cost at run time.
    Batch-norm running statistics are averaged like the weights; integer buffers (batches seen)
    come from the first model. The config returned is the first model's; a later model with a
    smaller Lite encoder is grown to it first (``model.grown_to``: deeper, then wider, the same way
    every time), so a run grown from a model averages with its start.

    Args:
        paths: training checkpoints (.pt) or safetensors files of the same architecture.
        weights: one per path, normalised to sum to 1; equal when None.
        raw: from checkpoints that also hold a weight average, take the raw weights.
    """
    if not paths:
        raise ValueError("average_models needs at least one model")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weights given for {len(paths)} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    total = sum(weights)
    model, config = load_model(paths[0], raw=raw)
    mean: dict[str, torch.Tensor] = {}
    for i, (path, w) in enumerate(zip(paths, weights, strict=True)):
        other = model if i == 0 else grown_to(load_model(path, raw=raw)[0], model.config)
        if other.config != model.config:
            raise ValueError(
                f"{path} has model {other.config}, {paths[0]} has {model.config}: "
                "only models of one architecture can be averaged"
            )
        for k, v in other.state_dict().items():
            if not v.is_floating_point():
                mean.setdefault(k, v.clone())
            else:
                mean[k] = mean.get(k, 0) + v.double() * (w / total)
    state = model.state_dict()
    model.load_state_dict({k: mean[k].to(state[k].dtype) for k in state})
    return model.eval(), config
