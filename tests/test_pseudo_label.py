"""scripts/pseudo_label.py, the self-training labels: the teachers' answers (written here by hand
where the real teachers would have written them, so none has to run) become person, background
and left-out pixels by the rules in its docstring, and photos the teachers are unsure of or find
nobody in are dropped, each counted in the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
H, W = 40, 30
BOX = (slice(5, 35), slice(8, 22))  # the person, 30 x 14 of 40 x 30 (35 % of the frame)


def _prob(inside: float, outside: float = 0.02, strip: float | None = None) -> np.ndarray:
    """A teacher's probability map: ``inside`` over BOX, ``outside`` elsewhere; ``strip``: the
    value of the two columns right of BOX (where teachers may disagree)."""
    prob = np.full((H, W), outside, np.float32)
    prob[BOX] = inside
    if strip is not None:
        prob[5:35, 22:24] = strip
    return prob


def _top_third(prob: np.ndarray, value: float) -> np.ndarray:
    prob = prob.copy()
    prob[5:15, BOX[1]] = value
    return prob


# photo -> {teacher: probability map}; pack from the name's prefix.
ANSWERS = {
    "picsart-sure": {"mediapipe": _prob(0.95), "personcut@best": _prob(0.9)},
    # the self-teacher says person where MediaPipe says background: left out, not person
    "picsart-edge": {"mediapipe": _prob(0.95, strip=0.1), "personcut@best": _prob(0.9, strip=0.9)},
    # the teachers agree on the top third of the person only: more unsure than sure -> dropped
    "picsart-unsure": {"mediapipe": _prob(0.95), "personcut@best": _top_third(_prob(0.2), 0.9)},
    "picsart-empty": {"mediapipe": _prob(0.03), "personcut@best": _prob(0.01)},
    # three teachers: the mean decides, and any teacher on the other side of 0.5 leaves it out
    "ccp-mean": {
        "mediapipe": _prob(0.9, strip=0.95),
        "rembg-u2netp": _prob(0.6, strip=0.45),  # strip: mean 0.78, sure by the mean alone
        "personcut@best": _prob(0.9, strip=0.95),
    },
}


# the shipped model teaches, or an earlier one from a file (its answers in a folder named after
# the file's path with "/" as "_"; were they looked for elsewhere, the missing file would be run)
@pytest.mark.parametrize("self_teacher", ["personcut@best", "personcut-runs/t/s22.onnx@best"])
def test_teachers_answers_become_labels_and_unsure_photos_are_dropped(tmp_path, self_teacher):
    data, out = tmp_path / "unlabeled", tmp_path / "pseudo"
    rng = np.random.default_rng(0)
    for name, answers in ANSWERS.items():
        pack = "picsart-test" if name.startswith("picsart") else "ccp-extra"
        (data / pack).mkdir(parents=True, exist_ok=True)
        photo = rng.integers(0, 255, (H, W, 3), np.uint8)
        Image.fromarray(photo).save(data / pack / f"{name}.png")
        for teacher, prob in answers.items():
            teacher = self_teacher if teacher == "personcut@best" else teacher
            folder = out / "teachers" / teacher.replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(prob * 255).astype(np.uint8)).save(folder / f"{name}.png")
    before = {p: p.read_bytes() for p in data.rglob("*.png")}

    cmd = [sys.executable, "scripts/pseudo_label.py", "--data", str(data), "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--self-teacher", self_teacher], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    report = json.loads((out / "pseudo_labels.json").read_text())["packs"]
    assert report["picsart-test"]["kept"] == 2
    assert report["picsart-test"]["dropped"] == {"unsure": 1, "no person": 1}
    assert report["picsart-test"]["teachers"] == ["mediapipe", self_teacher]
    assert report["ccp-extra"]["kept"] == 1
    assert report["ccp-extra"]["teachers"] == ["mediapipe", "rembg-u2netp", self_teacher]
    kept = sorted(p.stem for p in (out / "images").iterdir())
    assert kept == ["ccp-mean", "picsart-edge", "picsart-sure"]

    def label(name: str) -> tuple[np.ndarray, np.ndarray]:
        with (
            Image.open(out / "masks" / f"{name}.png") as m,
            Image.open(out / "ignore" / f"{name}.png") as i,
        ):
            return np.asarray(m.convert("L")) > 0, np.asarray(i.convert("L")) > 0

    person, ignore = label("picsart-sure")
    truth = np.zeros((H, W), bool)
    truth[BOX] = True
    assert (person == truth).all() and not ignore.any()

    person, ignore = label("picsart-edge")  # mean 0.5 on the strip: neither side is sure
    assert (person == truth).all()
    assert ignore[5:35, 22:24].all() and ignore.sum() == 60

    person, ignore = label("ccp-mean")  # box: mean 0.8 -> person; strip: u2netp says no
    assert (person == truth).all()
    assert ignore[5:35, 22:24].all() and ignore.sum() == 60

    # the unlabeled photos are copied, never moved or changed
    assert {p: p.read_bytes() for p in data.rglob("*.png")} == before
