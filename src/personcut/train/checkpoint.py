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
from personcut.train.model import UNet


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


def save_safetensors(model: UNet, path: str | Path, config: Config | None = None) -> None:
    """Weights only, with the model config as safetensors metadata (strings)."""
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"model_config": json.dumps(model.config.__dict__)}
    if config is not None:
        meta["config"] = json.dumps(config.to_dict())
    write_atomic(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[UNet, Config]:
    """Rebuild a U-Net from a training checkpoint (.pt) or a safetensors file."""
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
        state = ckpt["model"]
    model = UNet.from_config(config.model)
    model.load_state_dict(state)
    return model.eval(), config
