"""Where the time of one `personcut remove` goes, stage by stage, at 1 megapixel.

    python benchmarks/profile_remove.py                          # the shipped default model
    python benchmarks/profile_remove.py --model classic
    PYTHONPATH=OLD/src python benchmarks/profile_remove.py \
        --model OLD/src/personcut/weights/personcut.onnx    # an older checkout, for "before"

Uses only functions that every version of personcut since the guided filter has had, so an older
checkout (through PYTHONPATH) can be profiled the same way for a before/after table. Stages:
decode (JPEG bytes to an upright image), to RGB, network (resize to the working size, pad, ONNX
Runtime), refine (the rest of Segmenter.predict_rgb: guided filter to full size, levels), compose
(the RGBA cutout), encode (PNG). Medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--megapixels", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", type=Path, help="write the medians as JSON here")
    args = p.parse_args()

    from bench_remove import photo_bytes

    import personcut
    from personcut import Segmenter

    try:  # the layout since issue 20
        from personcut.compose import compose_array as compose
        from personcut.images import encode_pixels as encode
        from personcut.images import load_image, to_rgb
    except ImportError:  # an older checkout: everything in personcut.imaging
        from personcut.imaging import load_image, to_rgb

        from personcut import imaging

        if hasattr(imaging, "encode_pixels"):  # composed and encoded as arrays
            compose, encode = imaging.compose_array, imaging.encode_pixels
        else:  # through a PIL image, as before
            compose, encode = imaging.compose, imaging.encode

    data = photo_bytes(args.megapixels)
    seg = Segmenter(args.model, device="cpu")
    times: dict[str, list[float]] = {}

    def timed(name: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    def network(rgb):
        small, _ = seg.prepare(rgb)
        return seg.logits(seg.to_batch([small]))

    for i in range(args.repeats + 1):  # the first run warms up and is dropped
        image = timed("decode", load_image, data)
        rgb = timed("to RGB", to_rgb, image)
        timed("network", network, rgb)
        alpha = timed("predict_rgb", seg.predict_rgb, [rgb])[0]
        out = timed("compose", compose, rgb, alpha)
        timed("encode PNG", encode, out, "PNG")
        if i == 0:
            times.clear()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    med["refine"] = max(0.0, med.pop("predict_rgb") - med["network"])
    order = ["decode", "to RGB", "network", "refine", "compose", "encode PNG"]
    total = sum(med[k] for k in order)
    print(
        f"personcut {getattr(personcut, '__version__', '?')} from {Path(personcut.__file__).parent}"
    )
    print(f"model {seg.path.name}, working size {seg.info.working_size}, {args.megapixels:g} MP\n")
    print("| stage | median ms |\n| --- | --- |")
    for k in order:
        print(f"| {k} | {med[k]:.1f} |")
    print(f"| **total** | **{total:.1f}** |")
    if args.out:
        args.out.write_text(
            json.dumps({"model": seg.path.name, "ms": med, "total_ms": total}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
