"""The one scorer (personcut.scoring) against hand counts and torchmetrics, and the training
meter against it."""

from __future__ import annotations

import numpy as np
import pytest

from personcut.scoring import IGNORE, MaskFolder, Scores, boundary_f


def test_scores_by_hand_with_ignored_pixels():
    # image 1: person TP=2, FP=1, FN=0, TN=1; image 2: TP=1, FP=1 (0.9 on background), FN=2;
    # the IGNORE pixel counts for nothing whatever is predicted there.
    scores = Scores()
    scores.add(np.array([[0.9, 0.9, 0.9, 0.1]]), np.array([[1, 1, 0, 0]]), "a")
    scores.add(np.array([[0.9, 0.1, 0.1, 0.9, 0.9]]), np.array([[1, 1, 1, IGNORE, 0]]), "b")
    r = scores.result()
    assert r["person_iou"] == pytest.approx(3 / 7)  # TP 3 over TP+FP+FN 3+2+2
    assert r["miou"] == pytest.approx((3 / 7 + 1 / 5) / 2)  # background: TN 1 / (1+2+2)
    assert r["images"] == 2
    assert r["by_source"]["a"]["person_iou"] == pytest.approx(2 / 3)
    assert r["by_source"]["b"]["person_iou"] == pytest.approx(1 / 4)
    bce = -(3 * np.log(0.9) + np.log(0.9) + 2 * np.log(0.1) + 2 * np.log(0.1)) / 8
    assert r["bce"] == pytest.approx(bce)


def test_scores_equal_torchmetrics_on_random_masks():
    torch = pytest.importorskip("torch")
    from torchmetrics.classification import BinaryJaccardIndex, MulticlassJaccardIndex

    rng = np.random.default_rng(0)
    scores = Scores()
    person = BinaryJaccardIndex(ignore_index=IGNORE)
    two = MulticlassJaccardIndex(num_classes=2, ignore_index=IGNORE)
    for _ in range(5):
        prob = rng.random((17, 23)).astype(np.float32)
        target = (rng.random((17, 23)) > 0.6).astype(np.uint8)
        target[rng.random((17, 23)) > 0.9] = IGNORE
        scores.add(prob, target, "x")
        hard = torch.from_numpy((prob > 0.5).astype(np.int64))
        person.update(hard, torch.from_numpy(target.astype(np.int64)))
        two.update(hard, torch.from_numpy(target.astype(np.int64)))
    r = scores.result()
    assert r["person_iou"] == pytest.approx(float(person.compute()), abs=1e-6)
    assert r["miou"] == pytest.approx(float(two.compute()), abs=1e-6)


def test_training_meter_gives_the_same_scores():
    torch = pytest.importorskip("torch")
    from personcut.train.metrics import SegmentationMeter

    rng = np.random.default_rng(1)
    scores, meter = Scores(), SegmentationMeter(["p", "q"])
    for i in range(4):
        logits = rng.normal(0, 2, (1, 9, 11)).astype(np.float32)
        target = (rng.random((1, 9, 11)) > 0.5).astype(np.uint8)
        target[0, 0, :3] = IGNORE
        source = "pq"[i % 2]
        scores.add(1 / (1 + np.exp(-logits[0])), target[0], source)
        meter.update(torch.from_numpy(logits), torch.from_numpy(target), source)
    want, got = scores.result(), meter.compute()
    for key in ("person_iou", "miou", "bce", "images"):
        assert got[key] == pytest.approx(want[key], rel=1e-5)
    assert got["by_source"]["q"]["person_iou"] == pytest.approx(
        want["by_source"]["q"]["person_iou"]
    )


def test_boundary_f_perfect_and_shifted():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    assert boundary_f(mask, mask, 1) == 1.0
    far = np.roll(mask, 8, axis=1)
    assert boundary_f(far, mask, 1) < 0.6


def test_boundary_f_reads_precision_and_recall():
    # The prediction finds the true square and a second one as large far from it: every true
    # edge is found (recall 1) and half the predicted edge is true (precision 1/2), F = 2/3.
    truth = np.zeros((60, 60), bool)
    truth[5:25, 5:25] = True
    pred = truth.copy()
    pred[35:55, 35:55] = True
    assert boundary_f(pred, truth, 1) == pytest.approx(2 / 3, abs=0.01)
    assert boundary_f(truth, pred, 1) == pytest.approx(2 / 3, abs=0.01)


def test_alpha_mae_leaves_ignored_pixels_out():
    scores = Scores(edges=True)
    target = np.array([[1, 1, 0, IGNORE]])
    scores.add(np.array([[1.0, 0.5, 0.25, 1.0]]), target, "a", "x")  # 1.0 on IGNORE: no error
    assert scores.per_image["x"]["mae"] == pytest.approx((0 + 0.5 + 0.25) / 3)


def test_mask_folder_reads_ignore_and_sources(tmp_path):
    from PIL import Image

    for d in ("images", "masks", "ignore"):
        (tmp_path / d).mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "images" / "ccp-1.jpg")
    Image.fromarray(np.array([[255, 255, 0, 0]] * 2, np.uint8)).save(tmp_path / "masks/ccp-1.png")
    Image.fromarray(np.array([[0, 255, 0, 0]] * 2, np.uint8)).save(tmp_path / "ignore/ccp-1.png")
    Image.new("RGB", (4, 2)).save(tmp_path / "images" / "lonely.jpg")  # no mask: skipped
    folder = MaskFolder.read(tmp_path)
    assert [p.source for p in folder] == ["ccp"] and len(folder.skipped) == 1
    _, mask = folder.pairs[0].load()
    assert mask[0].tolist() == [1, IGNORE, 0, 0]
