"""ONNX export with a parity check against torch, and the JSON that describes the model."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personcut.files import atomic_path, write_atomic
from personcut.train.checkpoint import load_model
from personcut.train.config import Config
from personcut.train.model import UNet, count_parameters, fix_same_padding
from personcut.weights import EMBEDDED_KEYS, KEY_NAME, KEY_PAD_MULTIPLE, KEY_WORKING_SIZE

log = logging.getLogger(__name__)

OPSET = 17
"""Supported by onnxruntime's CPU and CUDA providers since 1.14."""


def export_onnx(
    model: UNet, path: str | Path, fp16: bool = False, example_size: tuple[int, int] = (320, 240)
) -> None:
    """Write ``model`` as ONNX with dynamic batch, height and width.

    The graph expects sides that are a multiple of ``model.multiple``: the caller pads (the
    Segmenter does), which keeps padding logic out of the graph, and the encoder's "same"
    convolutions get constant pads (:func:`~personcut.train.model.fix_same_padding`).
    """
    model = copy.deepcopy(model).eval().cpu()
    fix_same_padding(model)
    m = model.multiple
    h, w = (-(-s // m) * m for s in example_size)
    example = torch.rand(1, 3, h, w)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            # The tracer notes that the pad branch is fixed at export time; that is intended.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (example,),
                tmp,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={
                    "image": {0: "batch", 2: "height", 3: "width"},
                    "logits": {0: "batch", 2: "height", 3: "width"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        if fp16:
            import onnx
            from onnxconverter_common import float16

            with warnings.catch_warnings():  # it warns for every tiny weight it rounds
                warnings.simplefilter("ignore", UserWarning)
                converted = float16.convert_float_to_float16(onnx.load(tmp), keep_io_types=True)
            onnx.save(converted, tmp)

    write_atomic(path, write)


def parity_check(model: UNet, onnx_path: str | Path, trials: int = 3, seed: int = 0) -> float:
    """Largest absolute logit difference between torch and ONNX Runtime on random inputs of
    several sizes and batch sizes."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    m = model.multiple
    worst = 0.0
    model = model.eval().cpu()
    for i in range(trials):
        n = 1 + i % 2
        h, w = m * (4 + 3 * i), m * (6 + 2 * i)
        x = torch.rand(n, 3, h, w, generator=g)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def describe(model: UNet, config: Config, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON written beside an exported model: what Segmenter needs and what people ask."""
    return {
        KEY_NAME: "personcut-unet",
        "architecture": "U-Net (Ronneberger et al. 2015), same-padded convs",
        "encoder": config.model.encoder,
        "width": config.model.width,
        "depth": config.model.depth,
        "decoder": model.decoder_widths,  # channels of each level, deepest first
        "batch_norm": config.model.batch_norm,
        "parameters": count_parameters(model),
        "input": "RGB float32 in [0, 1], NCHW; normalisation is inside the model",
        "normalisation": {"mean": list(config.model.mean), "std": list(config.model.std)},
        "output": "person logit per pixel (N, 1, H, W); sigmoid gives probability",
        KEY_WORKING_SIZE: config.data.eval_size,
        KEY_PAD_MULTIPLE: model.multiple,
        "training_data": config.data.train,
        **(extra or {}),
    }


def embed_metadata(path: str | Path, values: dict[str, Any]) -> None:
    """Write what the Segmenter needs into the ONNX file itself (custom metadata), so a model
    copied without its JSON still runs at the right size and padding."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in values.items():
        model.metadata_props.add(key=key, value=str(value))
    write_atomic(path, lambda tmp: onnx.save(model, tmp))


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    fp16: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export a checkpoint to ONNX, check parity, and write ``<output>.json`` beside it."""
    model, config = load_model(checkpoint)
    output = Path(output)
    # Exported and checked under a temporary name: a file that fails the check never appears
    # under the output's name (nor replaces a good one there).
    with atomic_path(output) as tmp:
        export_onnx(model, tmp, fp16=fp16)
        diff = parity_check(model, tmp)
        tolerance = 5e-2 if fp16 else 1e-3
        if diff > tolerance:
            raise RuntimeError(
                f"{output}: ONNX output differs from torch by {diff:.3g} (> {tolerance}); "
                "nothing written"
            )
        info = describe(
            model, config, {"onnx_parity_max_abs_diff": diff, "fp16": fp16, **(metadata or {})}
        )
        embed_metadata(tmp, {k: info[k] for k in EMBEDDED_KEYS})
    write_atomic(
        output.with_suffix(".json"),
        (json.dumps(info, indent=2) + "\n").encode(),
    )
    log.info("wrote %s (parity max |diff| %.2e)", output, diff)
    return info
