"""Put a training run's best model into the package: ONNX + JSON, safetensors, curves.

    python scripts/ship_model.py runs/default --working-size 320
    python scripts/ship_model.py runs/b --stages runs/a runs/b    # b continued from a (train.init)
    python scripts/ship_model.py runs/classic_stage3 --name classic  # `--model classic`
    python scripts/ship_model.py runs/c --continues-shipped     # c's train.init was `personcut`
    python scripts/ship_model.py runs/c --weights-dir /tmp/w    # ship somewhere else (tests)

``--name personcut`` (the default) is the model `personcut remove` runs; any other name ships
beside it as weights/NAME.onnx, chosen with `--model NAME`.

Every ship writes the per-epoch figures of all the stages it knows to weights/NAME_history.csv
beside the model, so a later run that starts from the shipped weights (``--continues-shipped``)
extends the curves and the epoch count without the earlier runs' folders, which a new machine
does not have.

Then regenerate the README pictures (scripts/make_examples.py) and the model card figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from safetensors import safe_open

from personcut.files import atomic_path
from personcut.train.export import export_checkpoint
from personcut.train.plots import training_curves
from personcut.weights import KEY_WORKING_SIZE

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "personcut" / "weights"


def read_history(path: Path) -> list[dict[str, Any]]:
    """Per-epoch figures from a run's metrics.csv (rewritten whole every epoch) or a shipped
    NAME_history.csv (whose ``stage`` column names each row's run). Reading them rather than
    last.pt keeps optimizer state out of memory and lets runs brought back from a GPU machine
    without their .pt files be shipped."""
    with open(path, newline="") as f:
        return [
            {
                k: int(v) if k == "epoch" else v if k == "stage" else float(v)
                for k, v in row.items()
                if v != ""
            }
            for row in csv.DictReader(f)
        ]


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    """The shipped model's per-epoch figures, all stages in order (``stage`` names each row's
    run), for the next ship to continue from."""
    keys = ["epoch", "stage"] + sorted({k for row in history for k in row} - {"epoch", "stage"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", type=Path, help="training output folder (best.safetensors, metrics.csv)")
    p.add_argument("--fp16", action="store_true")
    p.add_argument(
        "--working-size",
        type=int,
        help="long side the shipped model runs at (default: the run's eval_size)",
    )
    p.add_argument(
        "--stages",
        type=Path,
        nargs="+",
        help="all training runs that led to RUN, in order (RUN last), for the curves "
        "and the epoch count",
    )
    p.add_argument("--recipe", default="bash scripts/train_default.sh")
    p.add_argument(
        "--prior-epochs",
        type=int,
        default=0,
        help="epochs of earlier stages whose runs are not at hand (their weights "
        "were RUN's train.init)",
    )
    p.add_argument(
        "--continues-shipped",
        action="store_true",
        help="RUN (or the first of --stages) started from the shipped model NAME: its epoch "
        "count and curves (weights/NAME_history.csv) come first; replaces --prior-epochs",
    )
    p.add_argument(
        "--checkpoint",
        choices=["best", "last"],
        default="best",
        help="best: the epoch with the best validation person IoU; last: the run's last epoch "
        "(when other measurements, e.g. benchmarks/false_people.py, chose it)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        help="ship this .safetensors instead of RUN's checkpoint (--checkpoint is then unused): "
        "e.g. several runs' weights averaged (scripts/average_models.py); RUN still gives the "
        "curves",
    )
    p.add_argument(
        "--name",
        default="personcut",
        help="file name in the package: personcut (the default model) or another",
    )
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=WEIGHTS,
        help="where the shipped models live (default: the package's weights/)",
    )
    return p.parse_args()


def choose_weights(
    args: argparse.Namespace, last_stage: list[dict[str, Any]]
) -> tuple[dict[str, Any], Path]:
    """The .safetensors to ship and the history row of the epoch it holds."""
    if args.weights:
        return last_stage[-1], args.weights
    if args.checkpoint == "last":
        from personcut.train.checkpoint import load_model, save_safetensors

        model, config = load_model(args.run / "last.pt")
        weights = args.run / "last.safetensors"
        save_safetensors(model, weights, config)
        return last_stage[-1], weights
    # best.safetensors holds the epoch with the best validation person IoU (first of ties)
    return max(last_stage, key=lambda r: r.get("val_person_iou", -1)), args.run / "best.safetensors"


def lineage(
    prior: list[dict[str, Any]], first: int, runs: list[Path], stages: list[list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], list[int]]:
    """All stages' rows numbered from the first epoch trained, and the epochs where a stage
    starts (for the curves). Earlier stages whose figures are not at hand (--prior-epochs beyond
    the shipped history) leave the start of the axis empty."""
    history = [{**row, "epoch": first + i} for i, row in enumerate(prior)]
    starts = [first + i for i in range(1, len(prior)) if prior[i]["stage"] != prior[i - 1]["stage"]]
    for run, stage in zip(runs, stages, strict=True):
        if history:
            starts.append(first + len(history))
        history += [
            {**row, "epoch": first + len(history) + i, "stage": run.name}
            for i, row in enumerate(stage)
        ]
    return history, starts


def model_metadata(
    args: argparse.Namespace, stages: list[list[dict[str, Any]]], best: dict[str, Any]
) -> dict[str, Any]:
    metadata = {
        "recipe": args.recipe,
        # epochs of the earlier stages, plus this stage's up to the shipped checkpoint
        "epochs_trained": args.prior_epochs + sum(len(h) for h in stages[:-1]) + best["epoch"] + 1,
        "val_during_training": {k: round(v, 4) for k, v in best.items() if k.startswith("val_")},
    }
    if args.weights:  # an average's own scores come from `personcut evaluate`, not training
        with safe_open(str(args.weights), "pt") as f:
            sources = (f.metadata() or {}).get("averaged_from")
        metadata["weights"] = args.weights.name
        if sources:
            metadata["averaged_from"] = json.loads(sources)
        del metadata["val_during_training"]
    if args.working_size:
        metadata[KEY_WORKING_SIZE] = args.working_size
    metadata["name"] = args.name
    return metadata


def main() -> int:
    args = parse_args()
    weights_dir: Path = args.weights_dir
    runs = [*(args.stages or [])[:-1], args.run]
    stages = [read_history(run / "metrics.csv") for run in runs]
    shipped_history = weights_dir / f"{args.name}_history.csv"
    prior: list[dict[str, Any]] = []
    if args.continues_shipped:
        shipped = json.loads((weights_dir / f"{args.name}.json").read_text())
        args.prior_epochs = shipped["epochs_trained"]
        if shipped_history.is_file():
            prior = read_history(shipped_history)
    best, weights = choose_weights(args, stages[-1])
    history, starts = lineage(prior, args.prior_epochs - len(prior), runs, stages)
    metadata = model_metadata(args, stages, best)
    weights_dir.mkdir(exist_ok=True)
    info = export_checkpoint(weights, weights_dir / f"{args.name}.onnx", args.fp16, metadata)
    shutil.copyfile(weights, weights_dir / f"{args.name}.safetensors")
    curves = "training_curves.png" if args.name == "personcut" else f"{args.name}_curves.png"
    training_curves(history, weights_dir / curves, tuple(starts))
    # the shipped model's own lineage: the last stage up to the epoch shipped, no further
    shipped_rows = len(history) - len(stages[-1]) + best["epoch"] + 1
    write_history(history[:shipped_rows], shipped_history)
    what = args.weights.name if args.weights else f"epoch {best['epoch']}"
    print(
        f"shipped {what} ({info['parameters']} parameters, parity "
        f"{info['onnx_parity_max_abs_diff']:.2e}) into {weights_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
