"""The models shipped inside the package, in one place: their folder, their names, what a model
file says about itself (metadata keys) and the defaults when it says nothing.

Each shipped model is three files here: ``NAME.onnx`` (what ``remove`` runs), ``NAME.safetensors``
(the same weights for torch: fine-tuning, parity tests) and ``NAME.json`` (its description). The
ONNX file also carries the keys of :data:`EMBEDDED_KEYS` in its own metadata, so a copied
``.onnx`` alone still works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent
DEFAULT_NAME = "personcut"

DEFAULT_WORKING_SIZE = 320
"""Long side the network sees when the model says nothing."""
DEFAULT_PAD_MULTIPLE = 32
"""Padded sides are a multiple of this (2**depth; the shipped models have depth 5)."""

# Metadata keys, written by export (train/export.py) and read here.
KEY_NAME, KEY_WORKING_SIZE, KEY_PAD_MULTIPLE = "name", "working_size", "pad_multiple"
EMBEDDED_KEYS = (KEY_WORKING_SIZE, KEY_PAD_MULTIPLE, KEY_NAME)
"""The keys copied into the ONNX file's own metadata."""


def shipped(name: str = DEFAULT_NAME, suffix: str = ".onnx") -> Path:
    """The path of a shipped model's file (which may not exist: check with ``is_file``)."""
    return FOLDER / f"{name}{suffix}"


def shipped_models() -> list[str]:
    """Names of the models inside the package; "personcut" is the default."""
    return sorted(p.stem for p in FOLDER.glob("*.onnx"))


def resolve_model(model: str | Path | None, suffix: str = ".onnx") -> Path:
    """A model file from a path, a shipped model's name, or None or "shipped" (the default).
    ``suffix`` picks which of a shipped model's files (".onnx" to run, ".safetensors" to train).
    """
    if model is None or model == "shipped":
        return shipped(DEFAULT_NAME, suffix)
    path = Path(model)
    if path.is_file():
        return path
    if path.suffix == "" and path.name == str(model) and shipped(str(model), suffix).is_file():
        return shipped(str(model), suffix)
    names = ", ".join(shipped_models())
    raise FileNotFoundError(
        f"model {model} is neither a file nor a shipped model (shipped: {names})"
    )


@dataclass
class ModelInfo:
    """What a model says about itself: the ONNX file's metadata, else the JSON beside it, else
    the defaults above."""

    working_size: int = DEFAULT_WORKING_SIZE
    """Long side the network sees."""
    multiple: int = DEFAULT_PAD_MULTIPLE
    """Padded sides are a multiple of this (2**depth)."""
    name: str = DEFAULT_NAME
    extra: dict[str, Any] | None = None
    """Everything the JSON (and the embedded metadata) held; None when there was nothing."""

    @classmethod
    def for_model(cls, model: Path, embedded: dict[str, str] | None = None) -> ModelInfo:
        """``embedded``: the ONNX file's custom metadata."""
        meta = model.with_suffix(".json")
        raw: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}
        raw.update({k: v for k, v in (embedded or {}).items() if k in EMBEDDED_KEYS})
        if not raw:
            return cls(name=model.stem)
        return cls(
            working_size=int(raw.get(KEY_WORKING_SIZE, DEFAULT_WORKING_SIZE)),
            multiple=int(raw.get(KEY_PAD_MULTIPLE, DEFAULT_PAD_MULTIPLE)),
            name=raw.get(KEY_NAME, model.stem),
            extra=raw,
        )
