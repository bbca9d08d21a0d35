"""The pieces of benchmark scripts whose mistakes would not show in their figures: a probe that
turned the photo but not its mask would still print a plausible IoU."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


robustness = load("robustness")


@pytest.fixture
def photo():
    """A 60 x 40 photo: a person (a bright box) in the upper left of a textured background."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(40, 200, (40, 60, 3), dtype=np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[5:35, 8:20] = 1
    rgb[mask == 1] = (220, 180, 150)
    return rgb, mask


@pytest.mark.parametrize("name", robustness.CHANGES)
def test_each_change_keeps_photo_and_mask_together(name, photo):
    rgb, mask = photo
    x, m = robustness.change(name, rgb, mask, np.random.default_rng(0))
    assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
    assert x.shape[:2] == m.shape
    assert set(np.unique(m)) <= {0, 1}
    if name != "closeup":  # everything but the close-up keeps every person pixel
        assert m.sum() == mask.sum()


def test_turns_move_the_mask_with_the_photo(photo):
    rgb, mask = photo
    for name in ("turn90", "turn180"):
        x, m = robustness.change(name, rgb, mask, None)
        # The person's colour is where the turned mask says the person is.
        assert (x[m == 1] == (220, 180, 150)).all()


def test_looks_change_colour_only_as_named(photo):
    rgb, mask = photo
    gray, _ = robustness.change("gray", rgb, mask, None)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    sepia, _ = robustness.change("sepia", rgb, mask, None)
    assert (sepia[..., 0] >= sepia[..., 2]).all()  # warm: red over blue everywhere
    dark, _ = robustness.change("dark", rgb, mask, np.random.default_rng(0))
    bright, _ = robustness.change("bright", rgb, mask, None)
    assert dark.mean() < 0.4 * rgb.mean() and bright.mean() > 1.5 * rgb.mean()
    backlit, _ = robustness.change("backlit", rgb, mask, None)
    person, background = mask == 1, mask == 0
    # The person ends darker than the background, though it started brighter.
    assert backlit[person].mean() < backlit[background].mean()
    shadow, _ = robustness.change("shadow", rgb, mask, None)
    np.testing.assert_array_equal(shadow[person], rgb[person])  # the person untouched
    darker = (shadow.astype(int) < 0.7 * rgb).all(-1)
    assert darker[36:39, 12:19].all() and not darker[:32].any()  # on the ground, from the feet


def test_closeup_enlarges_the_person(photo):
    rgb, mask = photo
    x, m = robustness.change("closeup", rgb, mask, None)
    assert x.shape == rgb.shape
    assert m.mean() > 2 * mask.mean()  # the person fills more of the frame
    box = robustness.closeup_box(mask, 60 / 40)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 60 and 0 <= y0 < y1 <= 40
    assert abs((x1 - x0) / (y1 - y0) - 1.5) < 0.1  # the photo's shape, so nothing is squeezed
    assert robustness.closeup_box(np.zeros_like(mask), 1.5) is None


def test_ablation_variants_switch_off_what_they_name():
    """Each leave-one-out variant, applied to stage 5's config, turns off its augmentation and
    only that; `none` turns off all of them (a misspelt key would raise in load_config)."""
    from personcut.train.config import load_config

    ablate = load("ablate_augmentations")
    fields = {"gray": "gray_p", "turn": "turn_p", "exposure": "exposure_p", "closeup": "closeup_p"}

    def on(data) -> set[str]:
        names = {name for name, f in fields.items() if getattr(data, f) > 0}
        return names | ({"hard_negatives"} if data.negatives else set())

    assert on(load_config(ablate.CONFIG).data) == set(ablate.OFF)
    for variant, sets in ablate.VARIANTS.items():
        left = on(load_config(ablate.CONFIG, sets).data)
        if variant == "all":
            assert left == set(ablate.OFF)
        elif variant == "none":
            assert left == set()
        else:
            assert left == set(ablate.OFF) - {variant.removeprefix("no_")}


def test_judge_gives_the_whole_row_for_a_checkpoint(tmp_path):
    """judge.py exports a weights file and puts every step's figure in one row: a renamed key
    in evaluate's or a benchmark's JSON would break the tables built from these rows."""
    import json
    import shutil
    import subprocess
    import sys

    shared = BENCHMARKS.parent.parent / "shared" / "data"
    if not (shared / "persons-val").is_dir():
        pytest.skip("../shared/data is not here")
    data, negatives = tmp_path / "val", tmp_path / "negatives" / "one"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    images = shared / "persons-val" / "images"
    portraits = sorted(images.glob("picsart-*"))[:2]
    for image in [*sorted(images.glob("ccp-*"))[:2], *portraits]:
        shutil.copy(image, data / "images")
        shutil.copy(
            next((shared / "persons-val" / "masks").glob(image.stem + ".*")), data / "masks"
        )
    negatives.mkdir(parents=True)
    for backdrop in sorted((shared / "backgrounds").glob("*.jpg"))[:2]:
        shutil.copy(backdrop, negatives)
    # A "person-free" folder that is not: its held-out photo (the second) must be listed.
    people = tmp_path / "negatives" / "people"
    people.mkdir()
    for image in portraits:
        shutil.copy(image, people)
    weights = BENCHMARKS.parent / "src" / "personcut" / "weights" / "classic.safetensors"
    out = tmp_path / "judged"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "judge.py"),
            str(weights),
            "--name",
            "classic",
            "--data",
            str(data),
            "--negatives",
            str(tmp_path / "negatives"),
            "--out-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    row = json.loads((out / "classic.json").read_text())
    assert (out / "classic.onnx").is_file()  # exported, not scored from torch
    for key in (
        "person_iou",
        "ccp",
        "boundary_f",
        "alpha_mae",
        "false_people",
        "turn90",
        "closeup",
        "x3",
        "group_photo_marked",
    ):
        assert 0.0 <= row[key] <= 1.0, (key, row[key])
    assert row["person_iou"] > 0.5  # the classic model finds these people
    assert row["mirror"] is True  # scored as the default mode runs: with the mirror pass
    false_people = json.loads((out / "classic.false_people.json").read_text())
    assert false_people["over_limit"][f"people/{portraits[1].name}"] > 0.1
    # The list is the count: one entry per photo over the limit, no more, no fewer.
    held_out = 2  # one photo of each of the two folders (the second of each pair)
    assert len(false_people["over_limit"]) == round(row["false_people"] * held_out)
    assert "classic" in done.stdout and "person_iou=" in done.stdout


def test_judge_table_prints_results_rows_with_the_rules_verdict():
    """--table turns judged rows into RESULTS' stage table, the verdict from the rule: stage 60's
    average (kept in results/) fails on false people alone, six photos against four."""
    judge = load("judge")
    results = BENCHMARKS / "results"
    rule = json.loads((BENCHMARKS / "ship_rule.json").read_text())
    shipped = json.loads((results / "judge_s51_soup.json").read_text())
    line = judge.table_row(results / "judge_s60_soup.json", rule, shipped)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert len(cells) == judge.COLUMNS.count("|") + 2  # name, each column, rule
    assert cells[0] == "s60_soup" and cells[1] == "0.94482"
    assert cells[2] == "0.9443 / 0.924"  # ccp's boundary F read from the evaluate JSON beside
    assert cells[7] == "6" and cells[-1] == "FAIL false_people"
    assert judge.table_row(results / "judge_s51_soup.json", rule, shipped).endswith("| PASS |")


def test_ship_rule_fails_each_way_a_candidate_can_fall_short():
    judge = load("judge")
    rule = {
        "at_least": {"person_iou": 0.93},
        "at_most": {"false_people": 0.027},
        "than_shipped": {"boundary_f": ">=", "false_people": "<="},
    }
    shipped = {"boundary_f": 0.84, "false_people": 0.017}
    good = {"person_iou": 0.94, "boundary_f": 0.85, "false_people": 0.017}

    def verdicts(**change):
        return [ok for _, ok in judge.check_rule({**good, **change}, rule, shipped)]

    assert all(verdicts())
    assert verdicts(person_iou=0.92) == [False, True, True, True]  # below a floor
    assert verdicts(false_people=0.03) == [True, False, True, False]  # over a ceiling
    assert verdicts(boundary_f=0.839) == [True, True, False, True]  # worse than shipped
    assert verdicts(false_people=0.018) == [True, True, True, False]  # one photo more
    with pytest.raises(KeyError, match="person_iou"):
        judge.check_rule({"boundary_f": 0.9, "false_people": 0.0}, rule, shipped)
    with pytest.raises(ValueError, match="--against"):
        judge.check_rule(good, rule, None)
    with pytest.raises(ValueError, match="different passes"):  # one pass against two
        judge.check_rule({**good, "mirror": True}, rule, shipped)
    assert all(
        ok
        for _, ok in judge.check_rule({**good, "mirror": True}, rule, {**shipped, "mirror": True})
    )
    # the rule in the repo reads, and the shipped model meets its own bar
    repo_rule = json.loads((BENCHMARKS / "ship_rule.json").read_text())
    results = BENCHMARKS / "results"
    shipped_row = json.loads((results / "judge_s22_s26.json").read_text())
    large = json.loads((results / "eval_large_s22_s26.json").read_text())
    shipped_row["x3"] = large["person_iou"]["all"]
    assert all(ok for _, ok in judge.check_rule(shipped_row, repo_rule, shipped_row))


def test_padding_ways_feed_the_network_what_they_name(tiny_onnx):
    padding = load("padding")
    rgb = np.random.default_rng(4).integers(0, 255, (30, 45, 3), dtype=np.uint8)
    inputs = {}
    for way in padding.WAYS:
        seg = padding.segmenter_for(way, str(tiny_onnx), "frame")
        seg.info.working_size, seg.info.multiple = 40, 16  # 40 x 27: neither a multiple of 16

        def record(batch, real=seg.logits, way=way):
            inputs[way] = batch
            return real(batch)

        seg.logits = record
        assert seg.predict_rgb([rgb])[0].shape == (30, 45)
    assert inputs["stretch"].shape[-2:] == (32, 48)  # 27 -> 32 and 40 -> 48: up
    assert inputs["squeeze"].shape[-2:] == (32, 32)  # 40 -> 32: the nearest multiple
    edge, grey = inputs["pad-edge"][0], inputs["pad-grey"][0]
    assert edge.shape[-2:] == (32, 48)
    assert np.array_equal(edge[:, 27:, :40], np.repeat(edge[:, 26:27, :40], 5, axis=1))
    assert np.allclose(grey[:, 27:, :], 128 / 255) and np.allclose(grey[:, :, 40:], 128 / 255)
    assert not np.allclose(inputs["stretch"][0][:, 27:], edge[:, 27:])  # the photo fills it


@pytest.mark.parametrize("size", [32, 48])  # 48: taller than the photo, so padded
def test_refiner_patches_keep_photo_and_mask_together(photo, size):
    refiner = load("try_edge_refiner")
    rgb, mask = photo
    exact = mask.astype(np.float32)  # a guided output that is the truth itself
    views = [(rgb, exact, exact, mask, "s", "p")]
    edges = [refiner.edge_pixels(view) for view in views]
    x, y = refiner.patches(views, edges, size, 12, np.random.default_rng(1))
    assert x.shape == (12, 5, size, size) and y.shape == (12, 1, size, size)
    np.testing.assert_array_equal(x[:, 4], y[:, 0])  # mirrored or padded, input and target alike
    assert np.allclose(x[:, 0][y[:, 0] == 1], 220 / 255)  # the person's colour where it is person
    assert 0 < y.mean() < 1  # centred near the edge: both person and background


def test_a_fresh_refiner_is_the_guided_filter():
    torch = pytest.importorskip("torch")
    model = load("try_edge_refiner").make_refiner(4)
    x = torch.rand(2, 5, 16, 16)
    expected = torch.logit(x[:, 4:5].clamp(1e-4, 1 - 1e-4))
    torch.testing.assert_close(model(x), expected)


def test_error_picture_colours_what_was_missed_and_what_was_wrong(photo):
    rgb, mask = photo
    alpha = np.zeros(mask.shape, np.float32)
    alpha[5:35, 14:26] = 0.9  # shifted right by 6: the left strip missed, a right strip wrong
    show = load("show_errors")
    out = show.error_picture(rgb, alpha, mask == 1)
    assert (out[5:35, 8:14] == show.MISSED).all() and (out[5:35, 20:26] == show.FALSE).all()
    np.testing.assert_array_equal(out[5:35, 14:20], rgb[5:35, 14:20])  # right: left as it was
    np.testing.assert_array_equal(out[:5], rgb[:5])


def test_label_audit_leaves_out_unsure_pixels_and_scores_an_empty_agreement_as_one():
    from personcut.scoring import IGNORE

    disagreement = load("audit_labels").disagreement
    mask = np.zeros((10, 10), np.uint8)
    mask[:, :5] = 1
    alpha = np.zeros((10, 10), np.float32)
    alpha[:, :4] = 1.0  # one column of the person missed: 10 of 100 pixels wrong
    assert disagreement(alpha, mask) == pytest.approx((0.1, 0.8))
    mask[:, 4] = IGNORE  # the missed column marked unsure: nothing left to disagree on
    assert disagreement(alpha, mask) == pytest.approx((0.0, 1.0))
    nobody = np.zeros((10, 10), np.uint8)
    assert disagreement(np.zeros((10, 10), np.float32), nobody) == (0.0, 1.0)
    assert disagreement(np.full((10, 10), 0.75, np.float32), nobody) == pytest.approx((0.75, 0.0))


def test_worst_against_a_rival_orders_by_its_lead_within_a_source():
    def row(**figures):
        return {"per_image": {k: {"boundary_f": v[0], "source": v[1]} for k, v in figures.items()}}

    results = {
        "personcut": row(a=(0.9, "ccp"), b=(0.5, "ccp"), c=(0.7, "ccp"), d=(0.1, "coco")),
        "rival": row(a=(0.95, "ccp"), b=(0.9, "ccp"), c=(0.6, "ccp"), d=(0.9, "coco")),
    }
    worst = load("show_errors").worst_against
    assert [s for s, *_ in worst(results, "rival", 2, source="ccp")] == ["b", "a"]
    assert worst(results, "rival", 1)[0] == ("d", 0.1, 0.9)
    with pytest.raises(KeyError, match="no 'rembg'"):
        worst(results, "rembg", 1)


def _state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_measuring_pauses_the_training_and_always_lets_it_go_on():
    """measure_shipped's timings stop a training run's whole process group (its data workers
    too) and must continue it afterwards, also when a timing fails: a run left stopped would
    silently lose the rest of a session."""
    import subprocess
    import sys
    import time

    measure = load("measure_shipped")
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    run = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        time.sleep(0.5)
        worker = int(subprocess.check_output(["pgrep", "-P", str(run.pid)]).split()[0])
        with pytest.raises(RuntimeError), measure.paused(run.pid):
            time.sleep(0.2)
            assert _state(run.pid) == "T" and _state(worker) == "T"
            raise RuntimeError("a timing failed")
        time.sleep(0.2)
        assert _state(run.pid) != "T" and _state(worker) != "T"
    finally:
        os.killpg(run.pid, 9)
        run.wait()
