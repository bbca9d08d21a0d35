"""Two processes under torchrun (gloo, CPU) train like one and report the same metrics."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_run_matches_single_process_evaluation(folder_data, tmp_path):
    # 13 validation images over 2 ranks: a sampler that pads with a repeated image would count
    # one of them twice, and the metrics would differ from one process's.
    val = tmp_path / "val"
    shutil.copytree(folder_data, val)
    for sub in ("images", "masks"):
        shutil.copy(val / sub / "alpha-001.png", val / sub / "gamma-013.png")
    assert len(list((val / "images").iterdir())) == 13
    out = tmp_path / "ddp"
    common = [
        f"data.train=[{folder_data}]",
        f"data.val=[{val}]",
        "model.width=4",
        "model.depth=2",
        "train.epochs=2",
        "train.batch_size=2",
        "train.num_workers=0",
        "data.crop_size=32",
        "data.eval_size=48",
        "train.sheet_images=0",
    ]
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "personcut",
        "train",
        "--out",
        str(out),
    ]
    for item in common:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
    import torch

    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["epoch"] == 1
    ddp_val = ckpt["history"][-1]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "personcut",
            "evaluate",
            "--model",
            str(out / "last.pt"),
            "--data",
            str(val),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    metrics = json.loads(single.stdout)
    assert metrics["images"] == 13 and ddp_val["val_images"] == 13
    for key in ("person_iou", "miou", "bce"):
        assert metrics[key] == pytest.approx(ddp_val[f"val_{key}"], abs=1e-6), key
