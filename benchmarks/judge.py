"""One command that judges a candidate model the way the shipped one was chosen: every figure
of the row in RESULTS' tables ("Averaging weights"), from the repo's own commands.

    python benchmarks/judge.py runs/soups/soup4.safetensors            # export, then judge
    python benchmarks/judge.py runs/default_stage18/last.pt --name s18 --no-robustness
    python benchmarks/judge.py personcut                               # the shipped model

Steps (each a command anyone can run alone): `personcut export` (for .pt / .safetensors),
`personcut evaluate --edges` on persons-val (person IoU overall and per source, boundary F,
alpha MAE), `benchmarks/false_people.py` (share of held-out person-free photos with > 1 %
called person), `benchmarks/robustness.py` (person IoU on changed copies of persons-val), and
the share of the README's group photo marked person. Writes ``--out-dir/NAME.json`` with the
row and each step's own JSON beside it (``NAME.evaluate.json`` ...), and prints the row.
persons-val is for development: use the row to compare candidates, not to tune to it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VAL = ROOT.parent / "shared" / "data" / "persons-val"


def run(args: list[str], log: Path) -> str:
    """Run one step, its stderr (progress bars) to ``log``; its stdout back. A failed step
    stops the judging with its own message."""
    with log.open("w") as err:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"judge: {' '.join(args[:3])} ... failed (exit {done.returncode}); see {log}")
    return done.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", help=".pt, .safetensors, .onnx or a shipped name")
    p.add_argument("--name", help="the row's name; default: the file's parent and stem")
    p.add_argument("--data", type=Path, default=VAL, help="image/mask folder to score on")
    p.add_argument("--negatives", type=Path, help="person-free photos (false_people's --data)")
    p.add_argument("--no-robustness", action="store_true", help="skip the slowest step")
    p.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "judge", help="(git-ignored)")
    args = p.parse_args()

    model = Path(args.model)
    name = args.name or (f"{model.parent.name}_{model.stem}" if model.suffix else args.model)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    if model.suffix in (".pt", ".safetensors"):
        onnx = out / f"{name}.onnx"
        run([py, "-m", "personcut", "export", str(model), "-o", str(onnx)], out / f"{name}.log")
        scored = str(onnx)
    else:
        scored = args.model

    evaluation = json.loads(
        run(
            [
                py,
                "-m",
                "personcut",
                "evaluate",
                "--edges",
                "--model",
                scored,
                "--data",
                str(args.data),
            ],
            out / f"{name}.log",
        )
    )
    (out / f"{name}.evaluate.json").write_text(json.dumps(evaluation, indent=1) + "\n")
    row: dict[str, object] = {"name": name, "model": args.model}
    row["person_iou"] = evaluation["person_iou"]
    for source, figures in evaluation.get("by_source", {}).items():
        row[source] = figures["person_iou"]
    row["boundary_f"], row["alpha_mae"] = evaluation["boundary_f"], evaluation["mae"]

    fp_json = out / f"{name}.false_people.json"
    fp_args = [py, str(HERE / "false_people.py"), "--model", scored, "--out", str(fp_json)]
    if args.negatives:
        fp_args += ["--data", str(args.negatives)]
    run(fp_args, out / f"{name}.log")
    row["false_people"] = json.loads(fp_json.read_text())["all"]["share_over_limit"]

    if not args.no_robustness:
        rob_json = out / f"{name}.robustness.json"
        run(
            [
                py,
                str(HERE / "robustness.py"),
                "--model",
                scored,
                "--data",
                str(args.data),
                "--out",
                str(rob_json),
            ],
            out / f"{name}.log",
        )
        changed = json.loads(rob_json.read_text())["person_iou"]
        row.update({k: v for k, v in changed.items() if k != "plain"})

    from personcut import Segmenter

    group = Segmenter(scored).predict_mask(ROOT / "examples" / "group.jpg")
    row["group_photo_marked"] = float((group > 0.5).mean())

    (out / f"{name}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
