"""Two processes under torchrun (gloo, CPU) train like one and report the same metrics."""

import json
import os
import subprocess
import sys

import pytest


def test_two_process_run_matches_single_process_evaluation(folder_data, tmp_path):
    out = tmp_path / "ddp"
    common = [
        f"data.train=[{folder_data}]",
        f"data.val=[{folder_data}]",
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
        "29533",
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
            str(folder_data),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    metrics = json.loads(single.stdout)
    assert metrics["images"] == 12
    for key in ("person_iou", "miou", "bce"):
        assert metrics[key] == pytest.approx(ddp_val[f"val_{key}"], abs=1e-6), key
