"""Speed as ratios measured in one run, so the machine's noise cancels.

    python benchmarks/bench_speed.py                  # 0.3 / 1 / 12 MP, folders of 20 and 100
    python benchmarks/bench_speed.py --no-rembg       # without the rival (no venv to build)
    python benchmarks/bench_speed.py --no-rembg --model runs/judge/s52.onnx   # a candidate

1. One photo: personcut end to end (JPEG bytes in, PNG cutout bytes out, the path of
   `personcut remove`) against Pillow alone decoding the same JPEG and saving it as PNG with its
   default settings, interleaved run by run; the ratio is personcut's median over Pillow's.
2. Folders: `personcut remove DIR -o OUT` (a fresh process, model loading included) against
   rembg u2netp's own `remove()` loop over the same one-megapixel JPEGs (rembg in its own
   virtual environment, made by benchmarks/compare.py; its model loading included too), in
   folders of 20 and of 100 photos; photos per second and peak RSS of each.

Writes benchmarks/results/speed.json and speed.png (the ratios with 1.0 marked, and the folder
throughputs).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
PHOTOS = [ROOT / "examples" / "astronaut.jpg", ROOT / "examples" / "group.jpg"]

REMBG_LOOP = """
import sys, time, resource
from pathlib import Path
from rembg import new_session, remove
start = time.perf_counter()  # model loading included, as for personcut
session = new_session("u2netp")
files = sorted(Path(sys.argv[1]).glob("*.jpg"))
out = Path(sys.argv[2])
for f in files:
    (out / (f.stem + ".png")).write_bytes(remove(f.read_bytes(), session=session))
print(len(files) / (time.perf_counter() - start),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def jpeg_of(megapixels: float, source: Path = PHOTOS[0]) -> bytes:
    from bench_remove import photo_bytes  # the same scaled-up JPEG as bench_remove's

    return photo_bytes(megapixels, source)


def one_photo(megapixels: float, repeats: int, segmenter) -> dict:
    from personcut.cutout import CutoutOptions, cutout

    data = jpeg_of(megapixels)
    options = CutoutOptions(format="PNG")

    def pillow() -> None:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im.save(io.BytesIO(), "PNG")

    def ours() -> None:
        cutout(segmenter, data, options)

    pillow()
    ours()  # warm-up
    ts_pillow, ts_ours = [], []
    for _ in range(repeats):  # interleaved: both see the same machine
        for fn, into in ((pillow, ts_pillow), (ours, ts_ours)):
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    p, o = statistics.median(ts_pillow), statistics.median(ts_ours)
    return {
        "megapixels": megapixels,
        "pillow_ms": round(p * 1000, 1),
        "personcut_ms": round(o * 1000, 1),
        "ratio": round(o / p, 2),
        "ms_per_megapixel": round(o * 1000 / megapixels, 1),
    }


def folder(tmp: Path, n: int, rembg: bool, model: str) -> dict:
    photos = tmp / "photos"
    photos.mkdir()  # a fresh temporary folder per call
    jpegs = [jpeg_of(1.0, source) for source in PHOTOS]  # made once, written n times
    for i in range(n):
        (photos / f"p{i:02d}.jpg").write_bytes(jpegs[i % len(jpegs)])
    result: dict = {"photos": n}
    cmd = [
        sys.executable,
        "-c",
        "import resource, sys, time; from personcut.cli import main; t = time.perf_counter();"
        " code = main(sys.argv[1:]); dt = time.perf_counter() - t;"
        " print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(code)",
        "remove",
        str(photos),
        "-o",
        str(tmp / "ours"),
        "-q",
        "--model",
        model,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    result["personcut_photos_per_s"] = round(n / float(out[0]), 2)
    result["personcut_peak_rss_mb"] = round(float(out[1]))
    if rembg:
        sys.path.insert(0, str(HERE))
        from compare import venv_for

        py, env, note = venv_for("rembg-u2netp", HERE / ".cache")
        if py is None:
            result["rembg"] = f"skipped: {note}"
        else:
            (tmp / "theirs").mkdir()
            r = subprocess.run(
                [str(py), "-c", REMBG_LOOP, str(photos), str(tmp / "theirs")],
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                check=True,
            )
            speed, rss = (float(x) for x in r.stdout.split())
            result.update(
                rembg_u2netp_photos_per_s=round(speed, 2),
                rembg_peak_rss_mb=round(rss),
                rembg=note,
                speedup_over_rembg=round(result["personcut_photos_per_s"] / speed, 1),
            )
    return result


def plot(rows: list[dict], folders: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 3.4), width_ratios=(3, 2))
    labels = [f"{r['megapixels']:g} MP" for r in rows]
    ax.bar(labels, [r["ratio"] for r in rows], color="#4c78a8")
    ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set_ylabel("personcut / Pillow re-save")
    ax.set_title("JPEG in, PNG out: personcut's time over Pillow's")
    for i, r in enumerate(rows):
        ax.text(
            i,
            r["ratio"],
            f"{r['ratio']:.2f}\n{r['personcut_ms']:.0f} ms",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylim(0, max(1.2, max(r["ratio"] for r in rows) * 1.3))
    width = 0.38
    for j, (tool, key, color) in enumerate(
        (
            ("personcut", "personcut_photos_per_s", "#4c78a8"),
            ("rembg u2netp", "rembg_u2netp_photos_per_s", "#bbbbbb"),
        )
    ):
        xs = [i + (j - 0.5) * width for i in range(len(folders))]
        values = [f.get(key, 0.0) for f in folders]
        bx.bar(xs, values, width, color=color, label=tool)
        for x, v in zip(xs, values, strict=True):
            bx.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    bx.set_xticks(range(len(folders)), [f"{f['photos']} photos" for f in folders])
    bx.set_ylabel("photos per second")
    bx.set_title("folders of 1 MP JPEGs, model load included", fontsize=9)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=float, default=[0.3, 1.0, 12.0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument(
        "--photos", type=int, nargs="*", default=[20, 100], help="folder sizes (none: skip)"
    )
    p.add_argument("--no-rembg", action="store_true")
    p.add_argument("--model", default="personcut", help="an .onnx file; default: the shipped one")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()

    from personcut import Segmenter

    seg = Segmenter(args.model, device="cpu")
    rows = []
    for mp in args.sizes:
        rows.append(one_photo(mp, max(3, args.repeats // 3) if mp > 4 else args.repeats, seg))
        print(rows[-1], flush=True)
    folders = []
    for n in args.photos:
        with tempfile.TemporaryDirectory() as tmp:
            folders.append(folder(Path(tmp), n, not args.no_rembg, args.model))
        print(folders[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(
        json.dumps(
            {
                "model": seg.path.name,
                "photos": rows,
                "folders": folders,
                "peak_rss_mb_single_photos": round(peak),
            },
            indent=1,
        )
        + "\n"
    )
    if folders:
        plot(rows, folders, args.out / "speed.png")
    print("| MP | Pillow decode + PNG save | personcut end to end | ratio | ms per MP |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['megapixels']:g} | {r['pillow_ms']:.0f} ms | {r['personcut_ms']:.0f} ms | "
            f"{r['ratio']:.2f} | {r['ms_per_megapixel']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
