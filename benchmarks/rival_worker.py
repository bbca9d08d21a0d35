"""Runs ONE tool over a list of images inside that tool's own virtual environment.

Called by compare.py; not part of the personcut package. Writes each predicted person
probability as an 8-bit PNG and prints one JSON line per image with the model-only latency.

    python rival_worker.py TOOL LIST.txt OUT_DIR
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def load_tool(tool: str):
    """A function RGB uint8 HxWx3 -> probability float HxW in [0, 1]."""
    if tool.startswith("personcut"):  # personcut[-NAME][@QUALITY], e.g. personcut@best
        from personcut import Segmenter

        tool, _, quality = tool.partition("@")
        name = tool.partition("-")[2] or None  # a shipped model's name, e.g. classic
        if quality:  # a teacher (scripts/pseudo_label.py): raw probabilities, no levels step
            seg = Segmenter(name, device="cpu", quality=quality, alpha_levels=None)
        else:
            seg = Segmenter(name, device="cpu")
        return seg.predict_mask
    if tool.startswith("mediapipe"):
        import mediapipe as mp

        selection = 1 if tool.endswith("landscape") else 0
        model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection)
        return lambda rgb: model.process(rgb).segmentation_mask
    if tool.startswith("rembg-"):
        from rembg import new_session, remove

        session = new_session(tool.removeprefix("rembg-"))
        return lambda rgb: (
            np.asarray(remove(Image.fromarray(rgb), session=session, only_mask=True), np.float32)
            / 255.0
        )
    raise SystemExit(f"unknown tool {tool}")


def main() -> None:
    tool, listing, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    predict = load_tool(tool)
    paths = [Path(p) for p in listing.read_text().split("\n") if p]
    with Image.open(paths[0]) as im:
        predict(np.asarray(im.convert("RGB")))  # warm-up, not timed
    for path in paths:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        start = time.perf_counter()
        prob = predict(rgb)
        seconds = time.perf_counter() - start
        prob = np.asarray(prob, np.float32)
        if prob.shape != rgb.shape[:2]:
            prob = np.asarray(Image.fromarray(prob, "F").resize(rgb.shape[1::-1], Image.BILINEAR))
        Image.fromarray((np.clip(prob, 0, 1) * 255).round().astype(np.uint8)).save(
            out / f"{path.stem}.png"
        )
        print(json.dumps({"image": path.stem, "seconds": seconds}), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak}), flush=True)


if __name__ == "__main__":
    main()
