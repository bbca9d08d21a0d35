"""Clips end to end (decode, segment, compose, encode) and the steadiness of the matte.

    python benchmarks/bench_video.py                 # 720p and 1080p, WebM with alpha and MP4
    python benchmarks/bench_video.py --sizes 720 --seconds 2

Clips are made here from the sample photo (a slow pan, 30 fps, H.264 with an AAC tone), so the
figures need no data. Writes benchmarks/results/video.json and prints a table. Flicker: the mean
absolute change of alpha between consecutive frames on a still clip with camera-like noise
(the true mask never changes), with and without the temporal filter; lag: on the panning clip,
the mean absolute difference between the filtered and the unfiltered alpha where the unfiltered
one moved by more than 0.3 (a trailing ghost would show there).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "astronaut.jpg"


def make_clip(
    path: Path, height: int, seconds: float, fps: int = 30, pan: float = 2.0, noise: float = 0.0
) -> Path:
    import av

    width = round(height * 16 / 9) // 2 * 2
    frames = round(seconds * fps)
    shift = int(pan * frames) + 1
    photo = np.asarray(Image.open(SAMPLE).convert("RGB").resize((width + shift, height + shift)))
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        au = out.add_stream("aac", rate=44100)
        per_frame = 44100 // fps
        for i in range(frames):
            o = int(i * pan)
            crop = photo[o : o + height, o : o + width].astype(np.float32)
            if noise:
                crop = crop + rng.normal(0, noise, crop.shape)
            crop = np.ascontiguousarray(np.clip(crop, 0, 255).astype(np.uint8))
            for p in v.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                out.mux(p)
            t = (np.arange(per_frame) + i * per_frame) / 44100
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = 44100
            for p in au.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        for p in au.encode(None):
            out.mux(p)
    return path


def alphas_of(clip: Path, smoothing: float, segmenter) -> list[np.ndarray]:
    """The alpha of every frame as remove_video makes it (the filter recorded on its way out)."""
    import personcut.video as video

    seen: list[np.ndarray] = []
    real = video.TemporalFilter.__call__

    def spy(self, alpha):
        out = real(self, alpha)
        seen.append(out.copy())
        return out

    video.TemporalFilter.__call__ = spy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            video.remove_video(
                clip,
                Path(tmp) / "m.mp4",
                segmenter=segmenter,
                mask=True,
                smoothing=smoothing,
                progress=False,
            )
    finally:
        video.TemporalFilter.__call__ = real
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[720, 1080], help="frame heights")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--size", type=int, help="working size; default: remove_video's for clips")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = p.parse_args()

    from personcut import Segmenter
    from personcut.video import VIDEO_WORKING_SIZE, flicker, remove_video

    seg = Segmenter(args.model, device="cpu", working_size=args.size or VIDEO_WORKING_SIZE)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for height in args.sizes:
            clip = make_clip(tmp / f"in{height}.mp4", height, args.seconds)
            for name, options in (("webm", {}), ("mp4", {"bg": "white"})):
                start = time.perf_counter()
                stats = remove_video(
                    clip, tmp / f"out{height}.{name}", segmenter=seg, progress=False, **options
                )
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "height": height,
                        "width": stats["width"],
                        "output": name,
                        "frames": stats["frames"],
                        "seconds": round(seconds, 2),
                        "fps": round(stats["frames"] / seconds, 1),
                        "audio": stats["audio"],
                    }
                )
                print(rows[-1], flush=True)
        still = make_clip(tmp / "still.mp4", 360, 1.0, pan=0.0, noise=6.0)
        moving = make_clip(tmp / "moving.mp4", 360, 1.0, pan=4.0)
        steadiness = {}
        for smoothing in (0.0, 0.6):
            raw_still = alphas_of(still, smoothing, seg)
            steadiness[f"flicker_smoothing_{smoothing}"] = round(flicker(raw_still), 5)
        plain, filtered = alphas_of(moving, 0.0, seg), alphas_of(moving, 0.6, seg)
        lags = []
        for prev, cur, f in zip(plain[:-1], plain[1:], filtered[1:], strict=True):
            moved = np.abs(cur - prev) > 0.3
            if moved.any():
                lags.append(float(np.abs(f - cur)[moved].mean()))
        steadiness["lag_on_moving_edges"] = round(float(np.mean(lags)) if lags else 0.0, 4)
        print(steadiness)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "model": seg.path.name,
        "working_size": seg.info.working_size,
        "rows": rows,
        "steadiness": steadiness,
        "peak_rss_mb": round(peak),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| frames | output | frames/s | s |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['width']}x{r['height']} | {r['output']} | {r['fps']} | {r['seconds']} |")
    print(f"peak RSS {peak:.0f} MB; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
