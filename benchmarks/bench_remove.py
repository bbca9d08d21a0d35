"""End-to-end latency of `personcut remove` per photo: decode, infer, refine, encode.

Each (runtime, size) runs in a fresh subprocess so its peak memory (max RSS) is its own.
Prints a table and writes JSON.

    python benchmarks/bench_remove.py                       # shipped model, ORT vs torch
    python benchmarks/bench_remove.py --model m.onnx --runtimes onnx --sizes 1
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "astronaut.jpg"
WEIGHTS = ROOT / "src" / "personcut" / "weights"


def photo_bytes(megapixels: float, source: Path = SAMPLE) -> bytes:
    """A photo (the sample by default) scaled to about ``megapixels`` (4:3), as a JPEG."""
    from PIL import Image

    w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = round(w * 3 / 4)
    with Image.open(source) as im:
        big = im.convert("RGB").resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def one(
    model: str,
    megapixels: float,
    repeats: int,
    working_size: int | None,
    fmt: str = "PNG",
    quality: str = "balanced",
    decontaminate: bool = True,
) -> dict:
    from personcut import Segmenter
    from personcut.cutout import CutoutOptions, cutout_image
    from personcut.images import encode

    data = photo_bytes(megapixels)
    seg = Segmenter(model, device="cpu", working_size=working_size, quality=quality)
    options = CutoutOptions(format=fmt, decontaminate=decontaminate)

    def job() -> float:
        """The whole job, as personcut.cutout.cutout runs it with the encoding timed apart;
        returns the seconds spent encoding."""
        result = cutout_image(seg, data, options)
        start = time.perf_counter()
        encode(result, options.format, result.info.get("icc_profile"))
        return time.perf_counter() - start

    job()  # warm-up: session initialisation, allocator growth
    times, encoding = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        encoding.append(job())
        times.append(time.perf_counter() - start)
    return {
        "model": Path(model).name,
        "runtime": seg.runtime,
        "megapixels": megapixels,
        "format": fmt,
        "quality": quality,
        "decontaminate": decontaminate,
        "encode_median_ms": statistics.median(encoding) * 1000,
        "working_size": seg.info.working_size,
        "median_ms": statistics.median(times) * 1000,
        "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))] * 1000,
        "repeats": repeats,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model",
        help="ONNX model (torch runs the .safetensors beside it)",
        default=str(WEIGHTS / "personcut.onnx"),
    )
    p.add_argument("--runtimes", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"])
    p.add_argument("--sizes", nargs="+", type=float, default=[0.3, 1.0, 12.0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--working-size", type=int)
    p.add_argument(
        "--quality",
        default="balanced",
        choices=["fast", "balanced", "best", "frame"],
        help="frame: one pass at the working size, no mirror (video; default until session 18)",
    )
    p.add_argument("--no-decontaminate", action="store_true", help="keep the photo's colours")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["PNG", "WEBP"],
        type=str.upper,
        help="output formats timed with ONNX Runtime (torch: the first only)",
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "remove_latency.json"))
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def in_own_process(args: argparse.Namespace, model: str, mp: float, fmt: str) -> dict | None:
    """One row timed in a fresh process, so its peak RSS is this row's alone."""
    repeats = max(3, args.repeats // 3) if mp > 4 else args.repeats
    cmd = [sys.executable, __file__, "--one", "--model", model, "--sizes", str(mp)]
    cmd += ["--repeats", str(repeats), "--formats", fmt, "--quality", args.quality]
    if args.working_size:
        cmd += ["--working-size", str(args.working_size)]
    if args.no_decontaminate:
        cmd.append("--no-decontaminate")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        print(f"{mp} MP {fmt} with {model} failed:\n{result.stderr}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.one:
        print(
            json.dumps(
                one(
                    args.model,
                    args.sizes[0],
                    args.repeats,
                    args.working_size,
                    args.formats[0],
                    args.quality,
                    not args.no_decontaminate,
                )
            )
        )
        return
    rows = []
    print(
        "| runtime | output | MP | median ms | p90 ms | of which encode ms | "
        "without encode ms | peak RSS MB |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for runtime in args.runtimes:
        model = (
            args.model if runtime == "onnx" else str(Path(args.model).with_suffix(".safetensors"))
        )
        formats = args.formats if runtime == "onnx" else args.formats[:1]
        for mp, fmt in [(mp, fmt) for fmt in formats for mp in args.sizes]:
            r = in_own_process(args, model, mp, fmt)
            if r is None:
                continue
            rows.append(r)
            print(
                f"| {r['runtime']} | {r['format']} | {mp:.1f} | {r['median_ms']:.0f} | "
                f"{r['p90_ms']:.0f} | {r['encode_median_ms']:.0f} | "
                f"{r['median_ms'] - r['encode_median_ms']:.0f} | {r['peak_rss_mb']:.0f} |",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "cpu_count": _cpus()}, indent=2) + "\n")
    print(f"wrote {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
