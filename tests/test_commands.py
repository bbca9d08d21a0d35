"""The commands behind published numbers and shipped files, end to end: `personcut evaluate`
against IoU counted by hand, `personcut export` (and its parity check failing), `train --init`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import PASTE, scene_photo
from PIL import Image

from personcut.cli import main
from personcut.segmenter import Segmenter

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Three photos with hand-made masks (the pasted portrait's box, so the model is partly
    right), two sources."""
    root = tmp_path_factory.mktemp("labelled")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    left, top, right, bottom = PASTE
    for i, turn in enumerate((None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180)):
        image = scene_photo()
        mask = np.zeros((image.height, image.width), np.uint8)
        mask[top + 20 : bottom, left + 10 : right - 10] = 255
        mask_image = Image.fromarray(mask)
        if turn is not None:
            image, mask_image = image.transpose(turn), mask_image.transpose(turn)
        stem = f"{'left' if i % 2 else 'right'}-{i}"
        image.save(root / "images" / f"{stem}.png")
        mask_image.save(root / "masks" / f"{stem}.png")
    return root


def test_evaluate_gives_the_iou_counted_by_hand(labelled, capsys):
    assert main(["evaluate", "--model", "personcut", "--data", str(labelled)]) == 0
    result = json.loads(capsys.readouterr().out)
    seg = Segmenter(alpha_levels=None)
    inter = union = 0
    per_source: dict[str, list[int]] = {}
    for path in sorted((labelled / "images").iterdir()):
        pred = seg.predict_mask(path) > 0.5
        truth = np.asarray(Image.open(labelled / "masks" / path.name)) > 127
        i, u = int((pred & truth).sum()), int((pred | truth).sum())
        inter, union = inter + i, union + u
        counts = per_source.setdefault(path.stem.split("-")[0], [0, 0])
        counts[0], counts[1] = counts[0] + i, counts[1] + u
    assert 0.3 < inter / union < 0.95  # neither empty nor perfect: the count means something
    assert result["person_iou"] == pytest.approx(inter / union, abs=1e-9)
    for source, (i, u) in per_source.items():
        assert result["by_source"][source]["person_iou"] == pytest.approx(i / u, abs=1e-9)
    assert result["images"] == 3 and result["working_size"] == 320


def test_evaluate_edges_scores_the_alpha_remove_writes(labelled, capsys):
    from personcut.scoring import boundary_f

    assert main(["evaluate", "--model", "personcut", "--edges", "--data", str(labelled)]) == 0
    result = json.loads(capsys.readouterr().out)
    seg = Segmenter()  # levels on: the alpha `remove` writes
    bf, mae = [], []
    for path in sorted((labelled / "images").iterdir()):
        alpha = seg.predict_mask(path)
        truth = np.asarray(Image.open(labelled / "masks" / path.name)) > 127
        tol = max(1, round(0.0075 * np.hypot(*truth.shape)))
        bf.append(boundary_f(alpha > 0.5, truth, tol))
        mae.append(np.abs(alpha - truth).mean())
    assert 0.05 < np.mean(bf) < 0.99  # neither nothing nor everything right
    assert result["boundary_f"] == pytest.approx(np.mean(bf), abs=1e-9)
    assert result["mae"] == pytest.approx(np.mean(mae), abs=1e-6)
    assert "bce" not in result  # meaningless on an alpha with levels applied


def test_evaluate_edges_refuses_a_checkpoint_it_cannot_score_that_way(tiny_run, capsys):
    assert main(["evaluate", "--model", str(tiny_run / "best.pt"), "--edges", "--data", "x"]) == 2
    assert "needs an .onnx model" in capsys.readouterr().err


def test_export_writes_a_model_that_runs_like_its_checkpoint(tiny_run, tmp_path, capsys):
    out = tmp_path / "exported.onnx"
    assert main(["export", str(tiny_run / "best.pt"), "-o", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_max_abs_diff"] < 1e-4 and out.is_file()
    assert json.loads(out.with_suffix(".json").read_text())["working_size"] == 48
    photo = np.asarray(scene_photo())
    onnx, torch_seg = Segmenter(out), Segmenter(tiny_run / "best.pt")
    assert onnx.info.working_size == torch_seg.info.working_size == 48
    assert np.abs(onnx.predict_mask(photo) - torch_seg.predict_mask(photo)).max() < 1e-4


def test_export_that_fails_its_parity_check_writes_nothing(tiny_run, tmp_path, monkeypatch, capsys):
    import personcut.train.export as export

    real = export.export_onnx

    def broken(model, path, **kw):  # an exporter that gets the weights wrong
        real(model, path, **kw)
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path))
        first = graph.graph.initializer[0]
        first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * 3.0, first.name))
        onnx.save(graph, str(path))

    monkeypatch.setattr(export, "export_onnx", broken)
    out = tmp_path / "bad.onnx"
    good = b"a good model from before"
    out.write_bytes(good)
    assert main(["export", str(tiny_run / "best.pt"), "-o", str(out)]) == 1
    assert "differs from torch" in capsys.readouterr().err
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def _one_still_step(folder_data) -> list[str]:
    """--set pairs for a run of one step at learning rate 0 on the tiny folder: the weights it
    writes are the ones it started from."""
    sets = [
        f"data.train=[{folder_data}]",
        "data.val=[]",
        "data.backgrounds=null",
        "data.scene_p=0",
        "data.negative_p=0",
        "data.copy_paste_p=0",
        "data.crop_size=64",
        "train.epochs=1",
        "train.max_steps_per_epoch=1",
        "train.batch_size=2",
        "train.num_workers=0",
        "train.lr=0",  # no step: the weights stay the ones loaded
    ]
    return [x for s in sets for x in ("--set", s)]


def test_train_init_starts_from_the_shipped_weights(folder_data, tmp_path):
    from safetensors.numpy import load_file

    from personcut.weights import resolve_model

    out = tmp_path / "finetune"
    # The shipped model's encoder, as docs/TRAINING.md's fine-tuning command sets it.
    sets = [*_one_still_step(folder_data), "--set", "model.encoder=efficientnet_lite2"]
    args = ["train", "--config", "configs/default.yaml", "--init", "shipped", "--out", str(out)]
    assert main(args + sets) == 0
    got = load_file(out / "best.safetensors")
    want = load_file(resolve_model("personcut", ".safetensors"))
    convs = [k for k in want if k.endswith("weight") and want[k].ndim == 4]
    assert len(convs) > 20 and all(np.array_equal(got[k], want[k]) for k in convs)
    # and a model from ImageNet alone is not the shipped one: the comparison can fail
    assert (
        main(
            ["train", "--config", "configs/default.yaml", "--out", str(tmp_path / "scratch")] + sets
        )
        == 0
    )
    scratch = load_file(tmp_path / "scratch" / "best.safetensors")
    assert not all(np.array_equal(scratch[k], want[k]) for k in convs)


def test_train_init_grows_a_lite0_model_into_a_deeper_encoder(folder_data, tmp_path, capsys):
    """How the Lite1 shipped before was made from the Lite0 stages 31 + 38 (RESULTS, "Stage 45")."""
    from safetensors.numpy import load_file

    lite0 = tmp_path / "lite0"  # a Lite0 U-Net: ImageNet encoder, one still step
    sets = _one_still_step(folder_data)
    assert main(["train", "--config", "configs/default.yaml", "--out", str(lite0), *sets]) == 0
    start = str(lite0 / "best.safetensors")
    out = tmp_path / "lite1"
    args = ["train", "--config", "configs/default.yaml", "--init", start, "--out", str(out)]
    sets = [*sets, "--set", "model.encoder=efficientnet_lite1"]
    assert main(args + sets) == 0
    got = load_file(out / "best.safetensors")
    want = load_file(start)
    convs = [k for k in want if k.endswith("weight") and want[k].ndim == 4]
    assert all(np.array_equal(got[k], want[k]) for k in convs)
    added = set(got) - set(want)  # Lite1's extra blocks, silent to start
    assert len(added) > 20 and not got["encoder.body.blocks.1.2.bn3.weight"].any()
    # Lite2 grows too, deeper and then wider (how the shipped Lite2 was made, "Stage 50") ...
    sets[-1] = "model.encoder=efficientnet_lite2"
    assert main(args[:-1] + [str(tmp_path / "lite2"), *sets]) == 0
    wide = load_file(tmp_path / "lite2" / "best.safetensors")
    key = "encoder.body.blocks.2.0.conv_pwl.weight"  # writes stage 2: 40 channels, now 48
    assert wide[key].shape[0] == 48 and np.array_equal(wide[key][:40], want[key])
    capsys.readouterr()
    # ... but another U-Net (a wider stem) cannot carry the function over: a clear error.
    sets += ["--set", "model.width=16"]
    assert main(args[:-1] + [str(tmp_path / "wide"), *sets]) != 0
    assert "set model.* to match" in capsys.readouterr().err
