"""Put a training run's best model into the package: ONNX + JSON, safetensors, curves.

    python scripts/ship_model.py runs/default --working-size 320
    python scripts/ship_model.py runs/b --stages runs/a runs/b    # b continued from a (train.init)

Then regenerate the README pictures (scripts/make_examples.py) and the model card figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from personcut.export import export_checkpoint
from personcut.plots import training_curves

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "personcut" / "weights"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", type=Path, help="training output folder (holds best.pt)")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--working-size", type=int,
                   help="long side the shipped model runs at (default: the run's eval_size)")
    p.add_argument("--stages", type=Path, nargs="+",
                   help="all training runs that led to RUN, in order (RUN last), for the curves "
                   "and the epoch count")
    p.add_argument("--recipe", default="bash scripts/train_default.sh")
    args = p.parse_args()
    ckpt = torch.load(args.run / "best.pt", map_location="cpu", weights_only=False)
    best = max(ckpt["history"], key=lambda r: r.get("val_person_iou", -1))
    earlier = [torch.load(run / "last.pt", map_location="cpu", weights_only=False)["history"]
               for run in (args.stages or [args.run])[:-1]]
    history, starts = [], []
    for stage in [*earlier, ckpt["history"]]:
        if history:
            starts.append(len(history))
        history += [{**row, "epoch": len(history) + i} for i, row in enumerate(stage)]
    metadata = {
        "recipe": args.recipe,
        # epochs of the earlier stages, plus this stage's up to its best checkpoint
        "epochs_trained": sum(len(h) for h in earlier) + ckpt["epoch"] + 1,
        "val_during_training": {k: round(v, 4) for k, v in best.items()
                                if k.startswith("val_") and isinstance(v, float)},
    }
    WEIGHTS.mkdir(exist_ok=True)
    if args.working_size:
        metadata["working_size"] = args.working_size
    info = export_checkpoint(args.run / "best.pt", WEIGHTS / "personcut.onnx", args.fp16, metadata)
    shutil.copyfile(args.run / "best.safetensors", WEIGHTS / "personcut.safetensors")
    training_curves(history, WEIGHTS / "training_curves.png", tuple(starts))
    print(f"shipped epoch {ckpt['epoch']} ({info['parameters']} parameters, parity "
          f"{info['onnx_parity_max_abs_diff']:.2e}) into {WEIGHTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
