"""scripts/ship_model.py, shipping into a folder of our own (--weights-dir): a run's model, its
epoch count and per-epoch history, and a later run that continues the shipped one
(--continues-shipped) extending both instead of starting them again."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def _ship(run: Path, weights_dir: Path, *extra: str) -> None:
    cmd = [sys.executable, "scripts/ship_model.py", str(run), "--weights-dir", str(weights_dir)]
    subprocess.run([*cmd, "--working-size", "48", *extra], cwd=ROOT, check=True)


def _history(weights_dir: Path) -> list[dict[str, str]]:
    with open(weights_dir / "personcut_history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_continued_run_extends_the_shipped_epochs_and_history(tiny_run, tmp_path):
    from personcut.segmenter import Segmenter

    weights = tmp_path / "weights"
    _ship(tiny_run, weights)
    first = json.loads((weights / "personcut.json").read_text())
    assert first["epochs_trained"] == 1 and first["working_size"] == 48
    assert [row["stage"] for row in _history(weights)] == [tiny_run.name]

    # a second stage that started from the shipped weights (its figures: the tiny run's again)
    later = tmp_path / "later"
    shutil.copytree(tiny_run, later)
    _ship(later, weights, "--continues-shipped", "--checkpoint", "last")
    second = json.loads((weights / "personcut.json").read_text())
    assert second["epochs_trained"] == 2
    rows = _history(weights)
    assert [(int(r["epoch"]), r["stage"]) for r in rows] == [(0, tiny_run.name), (1, "later")]
    assert (weights / "training_curves.png").stat().st_size > 0
    assert (weights / "personcut.safetensors").is_file()

    # what was shipped runs through the inference path at the size it was shipped with
    photo = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    segmenter = Segmenter(weights / "personcut.onnx")
    assert segmenter.info.working_size == 48
    assert segmenter.predict_mask(Image.fromarray(photo)).shape == (40, 60)


def test_shipping_leaves_the_package_weights_alone(tiny_run, tmp_path):
    package = ROOT / "src" / "personcut" / "weights"
    before = {p.name: p.stat().st_mtime_ns for p in package.iterdir()}
    _ship(tiny_run, tmp_path / "elsewhere")
    assert {p.name: p.stat().st_mtime_ns for p in package.iterdir()} == before
