"""The figures the docs quote about a newly shipped model that `judge.py` does not give, in one
command, run after `scripts/ship_model.py`: its time at 1 MP beside the model it replaced, a
folder's speed, the quality modes, halos, the rivals' table, and the README's pictures.

    python benchmarks/measure_shipped.py --name s53 --before runs/soups/s51_shipped.onnx \
        --before-name "stage 51" --pause "$(pgrep -f stage54.yaml | head -1)"

(`--before`: the ONNX shipped until now, kept before shipping with
`git show HEAD:src/personcut/weights/personcut.onnx > runs/soups/s51_shipped.onnx`.)
The timed steps run with the process group of `--pause` stopped (SIGSTOP: a training run
sharing the cores) and continue it afterwards whatever happens; the others run beside it, their
figures do not depend on time. Writes into benchmarks/results/: remove_latency_NAME.json (the
shipped model and --before alternated twice in the default mode, then fast and best),
speed_NAME.json, compare.json / compare.md (personcut's rows remade, the rivals' reused),
evaluate_NAME_fast.json / evaluate_NAME_best.json, halo_NAME.json / .png; redraws
docs/examples.png and docs/edges.png; prints the group photo's share marked person in each mode.
Each step's progress goes to runs/measure_NAME.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
VAL = ROOT.parent / "shared" / "data" / "persons-val"
SHIPPED = ROOT / "src" / "personcut" / "weights" / "personcut.onnx"


def step(args: list[str], log: Path) -> str:
    """Run one command from the repo root, its stderr appended to ``log``; its stdout back."""
    print("+", " ".join(args[1:]), flush=True)
    with log.open("a") as err:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(
            f"measure_shipped: {' '.join(args[1:3])} ... failed (exit {done.returncode}); see {log}"
        )
    return done.stdout


@contextlib.contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """Stop ``pid``'s process group for the block (timings on a machine it shares), then let it
    go on, even when the block fails."""
    if pid is None:
        yield
        return
    group = os.getpgid(pid)
    if group == os.getpgid(0):
        sys.exit(f"measure_shipped: --pause {pid} is in this process's group; start it with setsid")
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def latency(name: str, before: Path, before_name: str, log: Path) -> dict:
    """bench_remove at 1 MP, PNG out: the shipped model and ``before`` alternated twice (the
    machine's day moves these more than a model does), then the shipped model's other modes."""
    runs = [(SHIPPED, name, "balanced"), (before, before_name, "balanced")] * 2
    runs += [(SHIPPED, name, "fast"), (SHIPPED, name, "best")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, which, quality in runs:
            out = Path(tmp) / "rows.json"
            flags = "--runtimes onnx --sizes 1.0 --repeats 15 --formats PNG --quality".split()
            bench = [sys.executable, str(HERE / "bench_remove.py"), "--model", str(model)]
            step([*bench, *flags, quality, "--out", str(out)], log)
            rows += [{**row, "which": which} for row in json.loads(out.read_text())["rows"]]
    note = (
        f"alternated, training paused (SIGSTOP): python benchmarks/bench_remove.py [--model "
        f"{before}] --runtimes onnx --sizes 1.0 --repeats 15 --formats PNG "
        "--quality balanced|fast|best"
    )
    return {"rows": rows, "cpu_count": os.cpu_count(), "note": note}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True, help="suffix of the result files, e.g. s53")
    p.add_argument("--before", type=Path, required=True, help="the ONNX model shipped until now")
    p.add_argument("--before-name", default="before", help="its label in the latency rows")
    p.add_argument("--pause", type=int, help="a process (training) to stop while timing")
    p.add_argument("--data", type=Path, default=VAL, help="persons-val")
    args = p.parse_args()
    if not args.before.is_file():
        p.error(f"--before {args.before}: no such file")
    py, name, log = sys.executable, args.name, ROOT / "runs" / f"measure_{args.name}.log"
    data = os.path.relpath(args.data, ROOT)  # as the results record it: no machine paths
    log.parent.mkdir(parents=True, exist_ok=True)

    with paused(args.pause):
        result = latency(name, args.before, args.before_name, log)
        (RESULTS / f"remove_latency_{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            flags = "--no-rembg --sizes 1.0 --repeats 5 --photos 100 --out".split()
            step([py, str(HERE / "bench_speed.py"), *flags, tmp], log)
            (RESULTS / f"speed_{name}.json").write_text((Path(tmp) / "speed.json").read_text())
        # its table has a time column too
        tools = "--tools personcut personcut-classic --reuse".split()
        step([py, str(HERE / "compare.py"), "--data", data, *tools], log)

    for quality in ("fast", "best"):
        evaluate = "-m personcut evaluate --model personcut --edges --quality".split()
        scores = step([py, *evaluate, quality, "--data", data], log)
        (RESULTS / f"evaluate_{name}_{quality}.json").write_text(scores)
    step([py, str(HERE / "bench_halo.py"), "--out", str(RESULTS / f"halo_{name}.json")], log)
    step([py, str(ROOT / "scripts" / "make_examples.py")], log)
    step([py, str(ROOT / "scripts" / "make_edge_sheet.py")], log)

    from personcut import Segmenter

    for quality in ("fast", "balanced", "best"):
        mask = Segmenter("personcut", quality=quality).predict_mask(ROOT / "examples" / "group.jpg")
        print(f"group photo, {quality}: {(mask > 0.5).mean():.2%} of the frame over 0.5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
