"""Ray's overhead: `personcut batch` against `personcut remove DIR` on the same 1 MP folder.

    python benchmarks/bench_batch.py                 # 200 photos, actors 1 and 2
    python benchmarks/bench_batch.py --photos 1000 --actors 1 2

Both run as fresh processes (model load and, for Ray, its start-up included), writing PNG
cut-outs of the same JPEGs (the sample photo at 1 MP, each with a different crop so that no two
are the same file). Reports photos per second, the ratio of Ray's to `remove`'s, and the peak
memory of the whole process tree (sampled every 0.2 s), so that flat memory over a run shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "examples" / "astronaut.jpg"


def make_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE) as im:
        big = im.convert("RGB").resize((1155, 1155), Image.BICUBIC)
    for i in range(count):
        dx = i % 200
        big.crop((dx, 0, dx + 1155 - 200, 866)).save(folder / f"p{i:05d}.jpg", quality=90)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, from /proc."""
    import os

    total, todo = 0, [pid]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().split()
                children.setdefault(int(stat[3]), []).append(int(entry))
            except OSError:
                pass
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(p, [])
    return total / 1024


def timed(cmd: list[str]) -> tuple[float, float, list[float]]:
    """(seconds, peak MB, MB samples) of a command's whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while proc.poll() is None:
        samples.append(tree_rss_mb(proc.pid))
        time.sleep(0.2)
    return time.perf_counter() - start, max(samples or [0.0]), samples


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--photos", type=int, default=200)
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path, default=HERE / "results" / "batch.json")
    args = p.parse_args()
    personcut = [sys.executable, "-m", "personcut"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        make_folder(folder, args.photos)
        seconds, peak, _ = timed([*personcut, "remove", str(folder), "-o", f"{tmp}/remove", "-q"])
        rows.append({"run": "personcut remove DIR", "seconds": seconds, "peak_mb": peak})
        for actors in args.actors:
            out = f"{tmp}/batch{actors}"
            cmd = [*personcut, "batch", str(folder), "-o", out, "-q", "--actors", str(actors)]
            seconds, peak, samples = timed(cmd)
            half = samples[len(samples) // 2 :] or [0.0]
            rows.append(
                {
                    "run": f"personcut batch, {actors} actor(s)",
                    "seconds": seconds,
                    "peak_mb": peak,
                    "second_half_mb_range": [min(half), max(half)],
                }
            )
    base = rows[0]["seconds"]
    for r in rows:
        r["photos_per_s"] = round(args.photos / r["seconds"], 2)
        r["ratio_to_remove"] = round(base / r["seconds"], 3)
        r["seconds"] = round(r["seconds"], 1)
        r["peak_mb"] = round(r["peak_mb"])
        print(json.dumps(r), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"photos": args.photos, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
