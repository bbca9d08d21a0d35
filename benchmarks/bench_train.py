"""Images per second for training and inference of the U-Net, per width, on this device, with
the speed settings switched on one by one: eager fp32, bf16 autocast, + channels_last,
+ torch.compile. Also the model's FLOPs per image, to read the result as a share of peak.

    python benchmarks/bench_train.py                      # 512 x 512, widths 16 32 64
    python benchmarks/bench_train.py --widths 8 16 --size 256 --steps 3   # a quick CPU look

Synthetic data on the device (the input pipeline is measured separately by ``train_data_wait``
in every run's metrics.csv). Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from personcut.train.config import ModelConfig
from personcut.train.losses import segmentation_loss
from personcut.train.model import UNet, flops_per_image

SETTINGS = ["fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile"]


def measure(
    width: int, setting: str, size: int, batch: int, steps: int, device: torch.device
) -> dict:
    torch.manual_seed(0)
    model = UNet(ModelConfig(width=width)).to(device)
    cl = "channels_last" in setting
    if cl:
        model = model.to(memory_format=torch.channels_last)
    runner = torch.compile(model) if "compile" in setting else model
    amp = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if "bf16" in setting
        else contextlib.nullcontext()
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).long()
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        with amp:
            logits = runner(x)
        loss = segmentation_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode(), amp:
            runner(x)

    result = {"width": width, "setting": setting, "size": size, "batch": batch}
    for name, step in (("train", train_step), ("infer", infer_step)):
        model.train(name == "train")
        for _ in range(2 if "compile" not in setting else 3):  # warm-up (and compilation)
            step()
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        result[f"{name}_img_s"] = steps * batch / (time.perf_counter() - start)
    gflops = flops_per_image(model.config, size, size) / 1e9
    result["gflops_fwd"] = gflops
    # training ~ 3x the forward pass (forward + two backward products)
    result["train_tflops"] = result["train_img_s"] * 3 * gflops / 1e3
    result["infer_tflops"] = result["infer_img_s"] * gflops / 1e3
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--widths", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "train_speed.json"
    )
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    print(f"device: {name}, torch {torch.__version__}, {args.size}x{args.size}, batch {args.batch}")
    print(
        "| width | setting | GFLOPs/img (fwd) | train img/s | infer img/s | train TFLOP/s "
        "| infer TFLOP/s |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for width in args.widths:
        for setting in args.settings:
            try:
                r = measure(width, setting, args.size, args.batch, args.steps, device)
            except Exception as exc:  # noqa: BLE001 - e.g. no compiler: report and go on
                print(f"| {width} | {setting} | failed: {type(exc).__name__}: {exc} |||||")
                continue
            rows.append(r)
            print(
                f"| {width} | {setting} | {r['gflops_fwd']:.1f} | {r['train_img_s']:.1f} | "
                f"{r['infer_img_s']:.1f} | {r['train_tflops']:.2f} | {r['infer_tflops']:.2f} |",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
