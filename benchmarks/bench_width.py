"""How wide can the shipped U-Net be and still keep `personcut remove` fast? Latency does not
depend on the weights, so this times untrained models of each width/depth/working size through
the same path as bench_remove.py (ONNX Runtime, 1 MP photo, decode -> infer -> refine -> compose
-> encode), each in a fresh subprocess. It bounds the widths worth training; which of those is
best is then a question for training (see MODEL_CARD.md).

    python benchmarks/bench_width.py --widths 8 12 16 --working-sizes 256 320
    python benchmarks/bench_width.py --encoder efficientnet_lite2 --widths 8 --depths 5 \
        --working-sizes 320 --decoders skips 240,96,48,16,8 --grow personcut  # wider levels

``--grow MODEL`` times a trained model grown into each shape (``model.grown_to``) instead of an
untrained one: untrained weights run slower (the shipped Lite2 untrained: about 1.5x).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_untrained(
    width: int,
    depth: int,
    working_size: int,
    out: Path,
    encoder: str = "classic",
    decoder: tuple[int, ...] | None = None,
    grow: str | None = None,
) -> tuple[Path, dict]:
    """An untrained model (or the trained ``grow`` grown into that shape) as ONNX with the JSON
    the Segmenter reads; returns both."""
    from personcut.train.config import Config, ModelConfig
    from personcut.train.export import describe, export_onnx
    from personcut.train.model import UNet

    model_config = ModelConfig(width=width, depth=depth, encoder=encoder, decoder=decoder)
    config = Config(model=model_config)
    config.data.eval_size = working_size
    model = UNet(config.model)
    if grow:
        from personcut.train.checkpoint import load_model
        from personcut.train.model import grown_to
        from personcut.weights import resolve_model

        model = grown_to(load_model(resolve_model(grow, suffix=".safetensors"))[0], model_config)
        if model.config != model_config:
            raise SystemExit(f"{grow} ({model.config}) cannot grow into {model_config}")
        model.eval()
    name = "skips" if decoder is None else "-".join(map(str, decoder))
    path = out / f"{encoder}_w{width}_d{depth}_s{working_size}_{name}.onnx"
    export_onnx(model, path)
    info = describe(model, config)
    path.with_suffix(".json").write_text(json.dumps(info))
    return path, info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", nargs="+", type=int, default=[8, 12, 16])
    p.add_argument("--depths", nargs="+", type=int, default=[4])
    p.add_argument("--working-sizes", nargs="+", type=int, default=[256])
    p.add_argument("--encoder", default="classic")
    p.add_argument("--grow", help="a trained model (path or name) grown into each shape")
    p.add_argument(
        "--decoders",
        nargs="+",
        default=["skips"],
        help="decoder level widths, deepest first, comma-separated; 'skips': as wide as the skips",
    )
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--format", default="PNG", type=str.upper)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "width_latency.json"))
    args = p.parse_args()

    from personcut.train.config import ModelConfig
    from personcut.train.model import flops_per_image

    rows = []
    print(
        "| encoder | width | depth | decoder | working size | parameters | GFLOP at 256x256 | "
        "median ms | of which encode ms | without encode ms |\n" + "| --- " * 10 + "|"
    )
    decoders = [None if d == "skips" else tuple(map(int, d.split(","))) for d in args.decoders]
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            for width in args.widths:
                for decoder in decoders:
                    for size in args.working_sizes:
                        model, info = export_untrained(
                            width, depth, size, Path(tmp), args.encoder, decoder, args.grow
                        )
                        r = _time(model, args)
                        mc = ModelConfig(width=width, depth=depth, encoder=args.encoder)
                        classic = args.encoder == "classic" and decoder is None
                        r.update(
                            encoder=args.encoder,
                            width=width,
                            depth=depth,
                            decoder=list(decoder) if decoder else "skips",
                            working_size=size,
                            parameters=info["parameters"],
                            gflop_256=flops_per_image(mc, 256, 256) / 1e9 if classic else None,
                        )
                        rows.append(r)
                        gflop = f"{r['gflop_256']:.2f}" if classic else "-"
                        print(
                            f"| {args.encoder} | {width} | {depth} | {r['decoder']} | {size} | "
                            f"{r['parameters']:,} | {gflop} | {r['median_ms']:.0f} | "
                            f"{r['encode_median_ms']:.0f} | "
                            f"{r['median_ms'] - r['encode_median_ms']:.0f} |",
                            flush=True,
                        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


def _time(model: Path, args: argparse.Namespace) -> dict:
    """bench_remove.py's one-model timing in a fresh process (its own ONNX Runtime threads)."""
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_remove.py"),
        "--one",
        "--model",
        str(model),
        "--sizes",
        str(args.megapixels),
        "--repeats",
        str(args.repeats),
        "--formats",
        args.format,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
