import io

import numpy as np
import pytest
from PIL import Image

from personcut.cutout import remove
from personcut.images import ImageError, load_image
from personcut.refine import ALPHA_LEVELS, levels
from personcut.segmenter import Segmenter


@pytest.fixture(scope="module")
def seg(tiny_onnx):
    return Segmenter(tiny_onnx)


@pytest.fixture()
def photo() -> Image.Image:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 90, (45, 61, 3), dtype=np.uint8)
    a[10:35, 20:40] = 220
    return Image.fromarray(a)


def test_every_input_type_gives_the_same_cutout_and_is_left_untouched(seg, photo, tmp_path):
    path = tmp_path / "p.png"
    photo.save(path)
    array = np.asarray(photo).copy()
    before_pil, before_array = photo.tobytes(), array.copy()
    outs = [remove(x, segmenter=seg) for x in (path, str(path), path.read_bytes(), photo, array)]
    for out in outs:
        assert out.size == photo.size and out.mode == "RGBA"
        assert np.array_equal(np.asarray(out), np.asarray(outs[0]))
    assert photo.tobytes() == before_pil and np.array_equal(array, before_array)


def test_modes_and_alpha_range(seg, photo):
    mask = seg.predict_mask(photo)
    assert mask.dtype == np.float32 and mask.shape == (45, 61)
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert remove(photo, segmenter=seg, mask=True).mode == "L"
    over = remove(photo, segmenter=seg, bg="#00ff00")
    assert over.mode == "RGB" and over.size == photo.size
    hard = np.asarray(remove(photo, segmenter=seg, mask=True, threshold=0.5))
    assert set(np.unique(hard)) <= {0, 255}
    assert remove(photo, segmenter=seg, blur=3).mode == "RGB"


def test_the_network_sees_the_photo_resized_without_padding(seg, monkeypatch):
    # A 4:3 photo at 320 is 320x240; 240 is not a multiple of the stride, and a band of repeated
    # border rows below it cost 0.006 person IoU and 0.017 boundary F on persons-val. The photo
    # is resized straight to 320x256 instead, and mixed shapes go in separate, unpadded calls.
    from personcut.segmenter import stretched_sides

    assert stretched_sides(240, 320, 32) == (256, 320)
    assert stretched_sides(213.3, 320, 32) == (224, 320) and stretched_sides(5, 9, 32) == (32, 32)
    assert stretched_sides(170.67, 256, 32) == (192, 256)  # stretched up, never squeezed
    seen = []
    real = seg.logits
    monkeypatch.setattr(seg, "logits", lambda batch: seen.append(batch) or real(batch))
    monkeypatch.setattr(seg.info, "working_size", 320)
    monkeypatch.setattr(seg.info, "multiple", 32)  # the shipped models' stride
    rng = np.random.default_rng(3)
    wide = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    tall = wide.transpose(Image.Transpose.ROTATE_90)
    alphas = seg.predict_masks([wide, tall, wide])
    assert [a.shape for a in alphas] == [(300, 400), (400, 300), (300, 400)]
    # balanced: each photo and its mirror image, one batch per shape
    assert [b.shape for b in seen] == [(4, 3, 256, 320), (2, 3, 320, 256)]
    expected = np.asarray(wide.resize((320, 256), Image.BILINEAR, reducing_gap=2.0)) / 255.0
    assert np.allclose(seen[0][0].transpose(1, 2, 0), expected, atol=1e-6)
    assert np.allclose(seen[0][2].transpose(1, 2, 0), expected[:, ::-1], atol=1e-6)
    seen.clear()
    seg.predict_masks([wide, wide], quality="fast")
    assert [b.shape for b in seen] == [(2, 3, 192, 256)]  # one pass, no mirror


def test_batch_equals_single(seg, photo):
    # Same-size images batch exactly; mixed sizes run as separate calls (still full-size out).
    other = photo.transpose(Image.Transpose.ROTATE_180)
    batch = seg.predict_masks([photo, other])
    assert np.allclose(batch[0], seg.predict_mask(photo), atol=1e-5)
    assert np.allclose(batch[1], seg.predict_mask(other), atol=1e-5)
    mixed = seg.predict_masks([photo, photo.transpose(Image.Transpose.ROTATE_90)])
    assert mixed[1].shape == (61, 45)


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "CMYK", "RGBA", "LA", "1"])
def test_any_mode_works(seg, photo, mode, tmp_path):
    image = photo.convert("L").convert("I;16") if mode == "I;16" else photo.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    image.save(path)
    out = remove(path, segmenter=seg)
    assert out.size == photo.size and out.mode == "RGBA"


def test_icc_profile_is_kept(seg, photo, tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "icc.png"
    photo.save(path, icc_profile=icc)
    assert remove(path, segmenter=seg).info.get("icc_profile") == icc
    # The bytes path (CLI, server) composes and encodes from arrays: the profile rides along.
    from personcut.cutout import CutoutOptions, cutout

    for options, kept in (
        (CutoutOptions(), True),
        (CutoutOptions(format="webp"), True),
        (CutoutOptions(bg="white", format="jpeg"), True),
        (CutoutOptions(mask=True), False),
    ):
        with Image.open(io.BytesIO(cutout(seg, path, options))) as out:
            assert out.info.get("icc_profile") == (icc if kept else None), options


def test_bad_inputs_name_the_problem(tmp_path, photo):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg.*0 bytes"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match="notes.png.*not an image"):
        load_image(text)
    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*truncated"):
        load_image(cut)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(buf.getvalue(), max_pixels=100)


def test_onnx_matches_torch(tiny_run, tiny_onnx, photo):
    a = Segmenter(tiny_onnx).predict_mask(photo)
    b = Segmenter(tiny_run / "best.pt").predict_mask(photo)
    c = Segmenter(tiny_run / "best.safetensors").predict_mask(photo)
    assert np.abs(a - b).max() < 1e-4 and np.abs(b - c).max() < 1e-6


def test_fp16_export_keeps_parity(tiny_run, tmp_path, photo):
    from personcut.train.export import export_checkpoint

    info = export_checkpoint(tiny_run / "best.pt", tmp_path / "half.onnx", fp16=True)
    assert info["fp16"] and info["onnx_parity_max_abs_diff"] < 5e-2
    full = Segmenter(tiny_run / "best.pt").predict_mask(photo)
    half = Segmenter(tmp_path / "half.onnx").predict_mask(photo)
    assert np.abs(full - half).max() < 2e-2


def test_shipped_models_by_name():
    from personcut.weights import resolve_model, shipped_models

    assert "personcut" in shipped_models()
    for name in shipped_models():
        assert resolve_model(name).suffix == ".onnx"
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped model.*personcut"):
        resolve_model("no-such-model")


def test_a_copied_onnx_without_its_json_keeps_size_and_padding(folder_data, tmp_path):
    # A depth-5 model needs sides that are multiples of 32; without its JSON the Segmenter used
    # to pad to 16 and crash on a 400x300 photo.
    import shutil

    from conftest import tiny_config

    from personcut.train.config import ModelConfig
    from personcut.train.export import export_checkpoint
    from personcut.train.loop import fit

    config = tiny_config(folder_data, tmp_path / "run", max_steps_per_epoch=1)
    config.model = ModelConfig(width=2, depth=5)
    config.data.eval_size = 96
    fit(config)
    export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", metadata={"name": "m"})
    lone = tmp_path / "alone"
    lone.mkdir()
    shutil.copy(tmp_path / "m.onnx", lone / "copied.onnx")
    seg = Segmenter(lone / "copied.onnx")
    assert (seg.info.multiple, seg.info.working_size, seg.info.name) == (32, 96, "m")
    photo = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert seg.predict_mask(photo).shape == (300, 400)


def test_size_argument_is_honoured_for_torch_checkpoints(tiny_run):
    assert Segmenter(tiny_run / "best.pt", working_size=64).info.working_size == 64
    assert Segmenter(tiny_run / "best.safetensors", working_size=80).info.working_size == 80


def test_importing_personcut_keeps_pillows_bomb_guard():
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import personcut, "
        "personcut.images, personcut.cli; assert Image.MAX_IMAGE_PIXELS == before, "
        "Image.MAX_IMAGE_PIXELS; print('kept', before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "kept" in out.stdout, out.stderr


def test_predict_refuses_a_bomb_before_decoding(seg, tmp_path):
    from conftest import png_bomb

    bomb = png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="bomb.png") as err:
        seg.predict_mask(bomb)
    assert err.value.kind == "too_large"


def test_cutout_options_are_checked_once_for_every_entry_point():
    from personcut.cutout import CutoutOptions, OptionError

    assert CutoutOptions(format="jpg", bg="white").format == "JPEG"
    for bad, match in [
        (dict(blur=float("inf")), "blur"),
        (dict(blur=2000), "blur"),
        (dict(threshold=5), "threshold"),
        (dict(bg="nocolour"), "bg"),
        (dict(format="gif"), "format"),
        (dict(format="jpeg"), "JPEG"),
    ]:
        with pytest.raises(OptionError, match=match):
            CutoutOptions(**bad)


def test_cutout_many_keeps_order_and_goes_on_after_a_bad_photo(seg, photo, tmp_path):
    from personcut.cutout import CutoutOptions, cutout_many

    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    images = [photo, bad, photo, photo]
    options = [
        CutoutOptions(),
        CutoutOptions(),
        CutoutOptions(mask=True, format="jpeg"),
        CutoutOptions(format="webp"),
    ]
    results = list(cutout_many(seg, images, options, batch_size=2))
    assert [i for i, _ in results] == [0, 1, 2, 3]
    assert isinstance(results[1][1], ImageError)
    assert results[0][1][:4] == b"\x89PNG" and results[2][1][:2] == b"\xff\xd8"
    assert results[3][1][8:12] == b"WEBP"


@pytest.mark.parametrize("fast", [True, False])
def test_png_output_is_exact_and_keeps_the_profile_with_or_without_fpng(fast, monkeypatch):
    import sys

    from PIL import ImageCms

    from personcut.images import encode

    if fast:
        pytest.importorskip("fpng")
    else:
        monkeypatch.setitem(sys.modules, "fpng", None)  # import fails: Pillow writes it
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = np.random.default_rng(0).integers(0, 255, (40, 50, 4), dtype=np.uint8)
    for mode, a in (("RGBA", pixels), ("RGB", pixels[..., :3]), ("L", pixels[..., 0])):
        with Image.open(io.BytesIO(encode(Image.fromarray(a, mode), "PNG", icc))) as back:
            assert back.mode == mode and np.array_equal(np.asarray(back), a)
            assert back.info.get("icc_profile") == (icc if mode != "L" else None)


def test_fast_guided_filter_matches_the_reference_formula():
    from personcut.refine import box_mean, guided_upsample
    from personcut.refine import gray as _gray

    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    full = np.asarray(Image.fromarray(small).resize((97, 71), Image.BICUBIC))
    prob = rng.random((24, 32)).astype(np.float32)
    # The filter as first written: float guide, levels applied afterwards.
    g_low, g_full = _gray(small), _gray(full)
    mean_i, mean_p = box_mean(g_low, 2), box_mean(prob, 2)
    a = (box_mean(g_low * prob, 2) - mean_i * mean_p) / (
        box_mean(g_low * g_low, 2) - mean_i**2 + 1e-3
    )
    b = mean_p - a * mean_i
    a, b = box_mean(a, 2), box_mean(b, 2)
    up = [
        np.asarray(Image.fromarray(x.astype(np.float32), "F").resize((97, 71), Image.BILINEAR))
        for x in (a, b)
    ]
    reference = levels(np.clip(up[0] * g_full + up[1], 0, 1), *ALPHA_LEVELS)
    gray8 = np.asarray(Image.fromarray(full).convert("L"))
    fast = guided_upsample(prob, g_low, gray8, stretch=ALPHA_LEVELS)
    assert fast.dtype == np.float32 and np.abs(fast - reference).max() < 1e-4


def test_full_size_alpha_steps_where_the_photo_does():
    """The default upsampling follows the photo: a mask that is a soft ramp at the working size
    (5 small pixels, 40 full-size ones) becomes a step at the photo's own edge. Bilinear
    upsampling alone keeps the ramp (0.03 across the edge's two pixels, not 0.8)."""
    from personcut.refine import to_full_size

    w, h, edge = 640, 480, 333
    photo = np.full((h, w, 3), 200, np.uint8)
    photo[:, :edge] = 40  # the person dark, the background bright
    image = Image.fromarray(photo)
    small = np.asarray(image.resize((80, 60), Image.BILINEAR))
    ramp = np.convolve((np.arange(80) < edge / 8).astype(np.float32), np.ones(5) / 5, "same")
    ramp[:3], ramp[-3:] = 1, 0  # "same" mode's zero padding would dim the left border
    alpha = to_full_size(np.tile(ramp, (60, 1)).astype(np.float32), small, image)
    row = alpha[h // 2]
    assert row[edge - 1] - row[edge] > 0.6
    assert row[: edge - 20].min() > 0.9 and row[edge + 20 :].max() < 0.1


def test_box_filter_is_exact_at_the_working_size():
    """Means of 5x5 windows (clipped at the borders) of a working-size map, in float32, against
    float64 brute force. A 2-D prefix sum in float32 was off by ~5e-4 here, which the guided
    filter's division by a small variance magnifies."""
    from personcut.refine import box_mean

    rng = np.random.default_rng(5)
    x = rng.random((240, 320))
    got = box_mean(x.astype(np.float32), 2)
    padded = np.pad(x, 2, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5))
    expected = np.nanmean(windows, axis=(-2, -1))
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 2e-5
    stacked = box_mean(np.stack([x, 1 - x]).astype(np.float32), 2)  # one pass over a stack
    assert np.allclose(stacked[0], got) and np.allclose(stacked[1], 1 - got, atol=2e-5)


def test_photos_side_by_side_give_the_same_bytes_in_order(tiny_onnx, photo, tmp_path):
    from personcut.cutout import CutoutOptions, cutout_many

    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    images = [photo, bad, photo.rotate(90, expand=True), photo, bad, photo]
    alone = list(cutout_many(Segmenter(tiny_onnx), images, CutoutOptions()))
    side_by_side = list(
        cutout_many(Segmenter(tiny_onnx, threads=1), images, CutoutOptions(), workers=3)
    )
    assert [i for i, _ in side_by_side] == list(range(len(images)))
    for (_, a), (_, b) in zip(alone, side_by_side, strict=True):
        if isinstance(a, Exception):
            assert isinstance(b, ImageError) and "bad.png" in str(b)
        else:
            assert a == b
    with pytest.raises(ValueError, match="threads"):
        Segmenter(tiny_onnx, threads=0)
    with pytest.raises(ValueError, match="workers"):
        list(cutout_many(Segmenter(tiny_onnx), images, CutoutOptions(), workers=0))


def test_full_size_steps_in_strips_match_the_whole_photo_formulas():
    """Photos larger than one strip (images.STRIP_PIXELS) give what whole-photo arithmetic
    gives: the RGBA cutout exactly, the guided filter's upsampling to float precision."""
    from personcut.compose import compose_array
    from personcut.images import STRIP_PIXELS
    from personcut.refine import guided_upsample

    rng = np.random.default_rng(4)
    h, w = 1003, 3 * STRIP_PIXELS // 1003  # about three strips, the last one short
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    alpha = np.clip(rng.random((h, w), dtype=np.float32) * 3 - 1, 0, 1)
    a8 = (alpha * 255 + 0.5).astype(np.uint8)
    expected = np.dstack([rgb * (a8 > 0)[..., None], a8])
    assert np.array_equal(compose_array(rgb, alpha), expected)

    prob = rng.random((40, 52)).astype(np.float32)
    g_low = rng.random((40, 52)).astype(np.float32)
    gray = rng.integers(0, 255, (h, w), dtype=np.uint8)
    got = guided_upsample(prob, g_low, gray, radius=2)
    # The same coefficients upsampled in one piece (radius 2, eps 1e-3, as the default).
    from personcut.refine import box_mean

    mean_i, mean_p = box_mean(g_low, 2), box_mean(prob, 2)
    a = (box_mean(g_low * prob, 2) - mean_i * mean_p) / (
        box_mean(g_low * g_low, 2) - mean_i**2 + 1e-3
    )
    b = mean_p - a * mean_i
    a, b = box_mean(a, 2), box_mean(b, 2)
    up = [
        np.asarray(Image.fromarray(x.astype(np.float32), "F").resize((w, h), Image.BILINEAR))
        for x in (a / 255.0, b)
    ]
    assert np.abs(got - np.clip(up[0] * gray + up[1], 0, 1)).max() < 1e-4


def test_cores_are_shared_out_among_workers(monkeypatch):
    import os

    from personcut.segmenter import threads_per_worker

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert threads_per_worker(1) is None  # alone: ONNX Runtime's default, every core
    assert [threads_per_worker(w) for w in (2, 3, 8, 32)] == [8, 5, 2, 1]
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert threads_per_worker(2) == 1
