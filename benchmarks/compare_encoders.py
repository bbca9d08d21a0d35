"""Which encoder learns most per minute of training? Lite0, Lite1 and Lite2 U-Nets from ImageNet,
the same recipe and data, validated on persons-val after every short epoch; the score against
the wall time spent (train.log's clock) is the comparison, since a larger
encoder takes longer per step. One at a time, on an otherwise idle machine.

    python benchmarks/compare_encoders.py                  # 4 epochs x 60 steps each
    python benchmarks/compare_encoders.py --epochs 2 --steps 20 --encoders efficientnet_lite0
    python benchmarks/compare_encoders.py --time-only    # the runs kept, their networks timed again

Writes benchmarks/results/compare_encoders.json and .png (person IoU against training minutes),
with each network's time on a 320 x 256 input (ONNX Runtime, best of 15: what it costs at run
time), and keeps each run under runs/encoders/.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = [  # stage 1 of the shipped recipe (configs/default.yaml) on the hand-labelled pack
    "data.train=[../shared/data/persons-train]",
    "data.val=[../shared/data/persons-val]",
    "data.backgrounds=../shared/data/backgrounds",
    "data.scene_p=0.25",
    "data.crop_size=192",
    "data.eval_size=320",
    "train.lr=0.001",
    "train.batch_size=16",
    "train.warmup_epochs=0.3",
    "train.seed=0",
]


def train_minutes(log: Path) -> list[float]:
    """Wall minutes from the run's first log line to each epoch's line (training and that
    epoch's validation; a larger encoder pays for both)."""
    stamps = []
    start = None
    for line in log.read_text().splitlines():
        when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        if start is None:
            start = when
        if ": epoch " in line:
            stamps.append((when - start).total_seconds() / 60)
    return stamps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "encoders")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/compare_encoders")
    parser.add_argument(
        "--time-only", action="store_true", help="keep the runs there, time their networks again"
    )
    args = parser.parse_args()
    results = {}
    if args.time_only:
        results = json.loads(args.out.with_suffix(".json").read_text())
    for encoder in args.encoders:
        run = args.runs / encoder
        if args.time_only:
            results[encoder]["network_ms_320x256"] = network_ms(run)
            print(encoder, results[encoder]["network_ms_320x256"], "ms", flush=True)
            continue
        overrides = [
            *RECIPE,
            f"model.encoder={encoder}",
            "model.depth=5",
            "model.width=8",
            f"train.epochs={args.epochs}",
            f"train.max_steps_per_epoch={args.steps}",
        ]
        cmd = [sys.executable, "-m", "personcut", "train", "--out", str(run)]
        for item in overrides:
            cmd += ["--set", item]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        sources = [k for k in rows[0] if k.startswith("val_") and k.endswith("_person_iou")]
        results[encoder] = {
            "minutes": [round(m, 2) for m in train_minutes(run / "train.log")],
            "steps": [(i + 1) * args.steps for i in range(len(rows))],
            **{k: [round(float(r[k]), 4) for r in rows] for k in sources},
            "images_per_s": [round(float(r["train_images_per_s"]), 2) for r in rows],
            "network_ms_320x256": network_ms(run),
        }
        print(encoder, json.dumps(results[encoder]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    return 0


def network_ms(run: Path, repeats: int = 15) -> float:
    """The run's last epoch exported to ONNX (parity-checked), then the network alone on a
    320 x 256 input through ONNX Runtime on all cores: the best of ``repeats``, in ms."""
    import time

    import numpy as np
    import onnxruntime as ort

    from personcut.train.export import export_checkpoint

    onnx = run / "last.onnx"
    export_checkpoint(run / "last.pt", onnx)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, 3, 256, 320), np.float32)}
    session.run(None, feed)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for encoder, r in results.items():
        ax.plot(r["minutes"], r["val_person_iou"], marker="o", label=encoder)
    ax.set_xlabel("minutes of training and validation on this machine")
    ax.set_ylabel("persons-val person IoU")
    ax.set_title("Encoders from ImageNet, same recipe")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
