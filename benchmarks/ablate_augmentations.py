"""What does each of issue 25's augmentations buy? Leave-one-out from the point before they came.

Stage 5 (configs/default_stage5.yaml) switched on, at once, grayscale/sepia (``gray_p``), lost
EXIF turns (``turn_p``), exposure faults and backlight (``exposure_p``), close-ups
(``closeup_p``) and hard negatives from backdrops-extra (``negatives``). Each variant here
trains stage 5's recipe from the same stage-4 weights, with the same seed and steps, with one of
them off (``all``: none off; ``none``: all off, i.e. stage 4's recipe continued). Each run is then
scored on persons-val per source, on persons-val made hard in the ways the augmentations aim
at (benchmarks/robustness.py), and on false people (benchmarks/false_people.py).

    python benchmarks/ablate_augmentations.py                       # train what is missing, score
    python benchmarks/ablate_augmentations.py --variants all none --epochs 1
    python benchmarks/ablate_augmentations.py --score-only

Runs live under runs/ablate/VARIANT (kept: a finished run is not trained again); figures go to
benchmarks/results/ablate_augmentations.json and .png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "default_stage5.yaml"
INIT = "runs/default_stage4/last.pt"  # stage 4 after 600 steps: where stage 5 started
OFF = {
    "gray": ["data.gray_p=0"],
    "turn": ["data.turn_p=0"],
    "exposure": ["data.exposure_p=0"],
    "closeup": ["data.closeup_p=0"],
    "hard_negatives": ["data.negatives=[]"],
}
VARIANTS = {"all": [], "none": [s for sets in OFF.values() for s in sets]}
VARIANTS |= {f"no_{name}": sets for name, sets in OFF.items()}


def train(name: str, epochs: int, steps: int, runs: Path) -> Path:
    out = runs / name
    last = out / "last.pt"
    if (out / "done").exists():
        return out
    cmd = [sys.executable, "-m", "personcut", "train", "--config", str(CONFIG)]
    sets = [
        f"train.init={INIT}",
        f"train.out_dir={out}",
        f"train.epochs={epochs}",
        f"train.max_steps_per_epoch={steps}",
        *VARIANTS[name],
    ]
    for s in sets:
        cmd += ["--set", s]
    if last.exists():  # a run stopped part-way goes on from where it was
        cmd += ["--resume", str(last)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    (out / "done").write_text("\n".join(sets) + "\n")
    return out


def score(name: str, out: Path) -> dict:
    """Export the run's last weights and score them three ways (cached in the run folder)."""
    cached = out / "scores.json"
    if cached.exists():
        return json.loads(cached.read_text())
    onnx = out / "model.onnx"
    for args in (
        ["-m", "personcut", "export", str(out / "last.pt"), "-o", str(onnx)],
        ["benchmarks/robustness.py", "--model", str(onnx), "--out", str(out / "robustness.json")],
        ["benchmarks/false_people.py", "--model", str(onnx), "--out", str(out / "fp.json")],
    ):
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    rob = json.loads((out / "robustness.json").read_text())
    fp = json.loads((out / "fp.json").read_text())
    scores = {"variant": name, **rob["person_iou"], "false_people": fp["all"]["share_over_limit"]}
    cached.write_text(json.dumps(scores, indent=1))
    return scores


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next((r for r in rows if r["variant"] == "all"), None)
    keys = [k for k in rows[0] if k not in ("variant",)]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(1, len(rows) - (base is not None))
    others = [r for r in rows if r is not base]
    for i, r in enumerate(others):
        # Change against `all` (positive: the variant is better without it), in IoU points;
        # false people in percentage points with the sign turned so up is better everywhere.
        deltas = []
        for k in keys:
            d = (r[k] - base[k]) * 100 if base else r[k] * 100
            deltas.append(-d if k == "false_people" else d)
        ax.bar([j + i * width for j in range(len(keys))], deltas, width, label=r["variant"])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys, rotation=30, ha="right")
    ax.set_ylabel("points against `all` (up = better)")
    ax.set_title("Leave-one-out: each augmentation off, same start, seed and steps")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablate")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--score-only", action="store_true", help="score the finished runs only")
    p.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablate_augmentations"
    )
    args = p.parse_args()

    outs = {}
    for name in args.variants:
        if args.score_only:
            if (args.runs / name / "done").exists():
                outs[name] = args.runs / name
        else:
            outs[name] = train(name, args.epochs, args.steps, args.runs)
    if args.train_only or not outs:
        return 0
    rows = [score(name, out) for name, out in outs.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.out.with_suffix(".png"))
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(round(r[k], 4)) if isinstance(r[k], float) else r[k] for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
