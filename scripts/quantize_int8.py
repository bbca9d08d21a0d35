"""An int8 copy of a shipped model (ONNX Runtime static quantisation), to measure, not to ship.

    python scripts/quantize_int8.py --out /tmp/personcut_int8.onnx
    personcut evaluate --model /tmp/personcut_int8.onnx --data ../shared/data/persons-val
    python benchmarks/bench_ort_options.py --extra /tmp/personcut_int8.onnx

QDQ format, weights int8 per channel, activations uint8, ranges from MinMax calibration on
--calibration-images photos of the training folder (never persons-val), prepared exactly as the
Segmenter prepares them. The model is exported again from its safetensors with fixed "same"
padding first: calibration runs at many sizes, and the graph must not fold a size in.
Results are in benchmarks/RESULTS.md ("int8 and float16"); the shipped model stays float32.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="personcut", help="a shipped model's name")
    p.add_argument("--out", type=Path, required=True, help="the int8 .onnx to write")
    p.add_argument(
        "--calibration", type=Path, default=ROOT.parent / "shared/data/persons-train/images"
    )
    p.add_argument("--calibration-images", type=int, default=64)
    args = p.parse_args()

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from personcut import Segmenter
    from personcut.train.checkpoint import load_model
    from personcut.train.export import embed_metadata, export_onnx
    from personcut.weights import KEY_PAD_MULTIPLE, KEY_WORKING_SIZE, resolve_model

    shipped = resolve_model(args.model)
    seg = Segmenter(shipped, device="cpu")  # prepares the calibration photos as `remove` does
    files = sorted(f for f in args.calibration.iterdir() if f.suffix.lower() in (".jpg", ".png"))
    random.Random(0).shuffle(files)
    files = files[: args.calibration_images]

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.queue = iter(files)

        def get_next(self) -> dict[str, np.ndarray] | None:
            path = next(self.queue, None)
            if path is None:
                return None
            with Image.open(path) as im:
                small, _ = seg.prepare(np.asarray(im.convert("RGB")))
            return {seg.input_name: seg.to_batch([small])}

    model, _ = load_model(shipped.with_suffix(".safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        export_onnx(model, fp32)
        # Symbolic shape inference stops at the final crop; ONNX's own inference is enough here.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(args.out),
            Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    embed_metadata(
        args.out,
        {
            KEY_WORKING_SIZE: seg.info.working_size,
            KEY_PAD_MULTIPLE: seg.info.multiple,
            "name": f"{seg.info.name}-int8",
        },
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), calibrated on {len(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
