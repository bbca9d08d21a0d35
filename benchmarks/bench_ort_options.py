"""ONNX Runtime session options for the shipped network, measured side by side.

    python benchmarks/bench_ort_options.py
    python benchmarks/bench_ort_options.py --extra /tmp/int8.onnx     # and another model file

The network alone (no resize, no refinement) on the input a 1-megapixel 4:3 photo gives it
(320x240, padded to 320x256), ORT's CPU provider. Each option is one session; the sessions are
run in turn, in blocks of five runs, round after round, so that the machine's noise falls on all
of them alike. Two
questions: what makes one photo fastest (latency), and what gets the most photos through both
cores (throughput: two Python threads calling one session at once, as `personcut remove`
does for folders). Writes benchmarks/results/ort_options.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent

LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
}


def session(model: str, threads: int | None, level: str = "all", spin: bool = True):
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--extra", nargs="*", default=[], help="more .onnx files, default options")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--out", type=Path, default=HERE / "results" / "ort_options.json")
    args = p.parse_args()

    from personcut.weights import resolve_model

    model = str(resolve_model(args.model))
    cores = os.cpu_count() or 1
    x = np.random.default_rng(0).random((1, 3, 256, 320), dtype=np.float32)
    configs = {
        f"default (all optimisations, {cores} threads, spinning)": session(model, None),
        "1 thread": session(model, 1),
        f"{cores} threads, no spinning": session(model, None, spin=False),
        "extended optimisations": session(model, None, "extended"),
        "basic optimisations": session(model, None, "basic"),
        **{f"{Path(e).name}, default options": session(e, None) for e in args.extra},
        **{f"{Path(e).name}, 1 thread": session(e, 1) for e in args.extra},
    }
    name = configs[next(iter(configs))].get_inputs()[0].name
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.rounds // 4):
        for key, s in configs.items():
            # Blocks of five, the first dropped: it warms up, and it absorbs the previous
            # session's threads, which spin for a while after their run.
            for i in range(5):
                start = time.perf_counter()
                s.run(None, {name: x})
                if i:
                    times[key].append(time.perf_counter() - start)
    latency = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}

    keys = list(configs)
    ways = {  # how the networks run: (session, threads calling it at once)
        f"one at a time, {cores} threads each": (configs[keys[0]], 1),
        f"{cores} at once, {cores} threads each": (configs[keys[0]], cores),
        f"{cores} at once, 1 thread each": (configs["1 thread"], cores),
        **{
            f"{Path(e).name}, {cores} at once, 1 thread each": (
                configs[f"{Path(e).name}, 1 thread"],
                cores,
            )
            for e in args.extra
        },
    }
    rates: dict[str, list[float]] = {k: [] for k in ways}
    with ThreadPoolExecutor(cores) as pool:
        for _ in range(args.rounds // 4):  # in turn again, 4 * cores networks a turn
            for key, (s, workers) in ways.items():
                n = 4 * cores

                def batch(count: int, s=s) -> None:
                    for _ in range(count):
                        s.run(None, {name: x})

                list(pool.map(batch, [1] * workers))  # warm up, let other threads settle
                start = time.perf_counter()
                list(pool.map(batch, [n // workers] * workers))
                rates[key].append(n / (time.perf_counter() - start))
    per_s = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    print(f"model {Path(model).name}, input 1x3x256x320, {cores} cores\n")
    print("| session | median ms per network |\n| --- | --- |")
    for k, v in latency.items():
        print(f"| {k} | {v} |")
    print("\n| how the networks run | networks per second |\n| --- | --- |")
    for k, v in per_s.items():
        print(f"| {k} | {v} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"model": Path(model).name, "cores": cores, "latency_ms": latency, "per_s": per_s},
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
