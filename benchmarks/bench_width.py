"""How wide can the shipped U-Net be and still keep `personcut remove` fast? Latency does not
depend on the weights, so this times untrained models of each width/depth/working size through
the same path as bench_remove.py (ONNX Runtime, 1 MP photo, decode -> infer -> refine -> compose
-> encode), each in a fresh subprocess. It bounds the widths worth training; which of those is
best is then a question for training (see MODEL_CARD.md).

    python benchmarks/bench_width.py --widths 8 12 16 --working-sizes 256 320
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_untrained(width: int, depth: int, working_size: int, out: Path) -> tuple[Path, dict]:
    """An untrained model as ONNX with the JSON the Segmenter reads; returns both."""
    from personcut.train.config import Config, ModelConfig
    from personcut.train.export import describe, export_onnx
    from personcut.train.model import UNet

    config = Config(model=ModelConfig(width=width, depth=depth))
    config.data.eval_size = working_size
    model = UNet(config.model)
    path = out / f"w{width}_d{depth}_s{working_size}.onnx"
    export_onnx(model, path)
    info = describe(model, config)
    path.with_suffix(".json").write_text(json.dumps(info))
    return path, info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", nargs="+", type=int, default=[8, 12, 16])
    p.add_argument("--depths", nargs="+", type=int, default=[4])
    p.add_argument("--working-sizes", nargs="+", type=int, default=[256])
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--format", default="PNG", type=str.upper)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "width_latency.json"))
    args = p.parse_args()

    from personcut.train.config import ModelConfig
    from personcut.train.model import flops_per_image

    rows = []
    print(
        "| width | depth | working size | parameters | GFLOP at 256x256 | median ms | "
        "of which encode ms | without encode ms |\n" + "| --- " * 8 + "|"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            for width in args.widths:
                for size in args.working_sizes:
                    model, info = export_untrained(width, depth, size, Path(tmp))
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
                    r = json.loads(result.stdout.strip().splitlines()[-1])
                    mc = ModelConfig(width=width, depth=depth)
                    r.update(
                        width=width,
                        depth=depth,
                        parameters=info["parameters"],
                        gflop_256=flops_per_image(mc, 256, 256) / 1e9,
                    )
                    rows.append(r)
                    print(
                        f"| {width} | {depth} | {size} | {r['parameters']:,} | "
                        f"{r['gflop_256']:.2f} | {r['median_ms']:.0f} | "
                        f"{r['encode_median_ms']:.0f} | "
                        f"{r['median_ms'] - r['encode_median_ms']:.0f} |",
                        flush=True,
                    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
