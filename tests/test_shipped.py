"""The shipped models as a test subject: each loads, finds the person, scores at least a floor on
a handful of the team's validation photos (well below today's figures, so that only a broken
model fails), and its .onnx gives what its .safetensors gives through torch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PASTE, SHARED, scene_photo

from personcut.scoring import MaskFolder, Scores
from personcut.segmenter import Segmenter
from personcut.weights import resolve_model, shipped_models

FLOORS = {"personcut": 0.85, "classic": 0.70}
"""Person IoU on the first 24 persons-val photos; today about 0.93 and 0.88 on the whole set."""


def test_both_models_are_shipped():
    assert shipped_models() == ["classic", "personcut"]


@pytest.mark.parametrize("name", ["personcut", "classic"])
def test_shipped_model_finds_the_person(name):
    alpha = Segmenter(name).predict_mask(scene_photo())
    left, top, right, bottom = PASTE
    inside = alpha[top:bottom, left:right] > 0.5
    outside = np.ones(alpha.shape, bool)
    outside[top:bottom, left:right] = False
    assert inside.mean() > 0.3, f"{name}: {inside.mean():.2f} of the portrait found"
    assert (alpha[outside] > 0.5).mean() < 0.02, f"{name}: the backdrop taken as person"
    assert alpha.std() > 0.2  # a constant model fails here


@pytest.mark.skipif(not (SHARED / "persons-val").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", ["personcut", "classic"])
def test_shipped_model_scores_above_its_floor(name):
    seg = Segmenter(name, alpha_levels=None)
    scores = Scores()
    for pair in MaskFolder.read(SHARED / "persons-val").pairs[::11][:24]:  # every source
        image, mask = pair.load()
        scores.add(seg.predict_rgb([image])[0], mask, pair.source)
    iou = scores.result()["person_iou"]
    assert iou >= FLOORS[name], f"{name}: person IoU {iou:.3f} below {FLOORS[name]}"


@pytest.mark.parametrize("name", ["personcut", "classic"])
def test_shipped_onnx_matches_its_safetensors(name):
    pytest.importorskip("torch")
    photo = np.asarray(scene_photo())
    onnx = Segmenter(name, alpha_levels=None).predict_mask(photo)
    torch_seg = Segmenter(resolve_model(name, ".safetensors"), alpha_levels=None)
    assert torch_seg.runtime == "torch" and torch_seg.info.working_size == 320
    diff = np.abs(torch_seg.predict_mask(photo) - onnx)
    assert diff.max() < 2e-3, f"{name}: .onnx and .safetensors differ by {diff.max():.4f}"
