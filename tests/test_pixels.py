"""What users see, checked on pixels with a model that finds the person (the shipped one) on a
photo with a person in a known place (conftest.scene_photo): backgrounds, blur, crop, threshold,
levels, EXIF orientation and colour profiles, through remove(), the CLI and the server."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import PASTE, SAMPLE, scene_photo
from PIL import Image, ImageFilter, ImageOps

from personcut.cli import main
from personcut.compose import crop_box
from personcut.cutout import remove
from personcut.refine import ALPHA_LEVELS, levels
from personcut.segmenter import Segmenter

RED = (255, 0, 0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(scene_photo())


@pytest.fixture(scope="module")
def alpha(shipped, photo) -> np.ndarray:
    return shipped.predict_mask(photo)


def regions(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(background: alpha 0, person: alpha 1), each large enough to mean something."""
    back, person = alpha == 0, alpha == 1
    assert back.sum() > 10_000 and person.sum() > 5_000, (back.sum(), person.sum())
    return back, person


def test_the_person_is_found_where_it_is(alpha):
    left, top, right, bottom = PASTE
    inside = alpha[top:bottom, left:right]
    outside = np.ones(alpha.shape, bool)
    outside[top:bottom, left:right] = False
    assert (inside > 0.5).mean() > 0.4 and (alpha[outside] > 0.5).mean() < 0.01


def test_colour_background_is_the_colour_and_the_person_the_photo(shipped, photo, alpha):
    out = np.asarray(remove(photo, bg="#ff0000", segmenter=shipped))
    back, person = regions(alpha)
    assert (out[back] == RED).all()
    assert np.array_equal(out[person], photo[person])
    between = (alpha > 0.2) & (alpha < 0.8)  # edges mix the two
    assert (out[between] != RED).any(axis=-1).all()


def test_picture_background_is_the_picture_fitted(shipped, photo, alpha):
    picture = Image.open(SAMPLE).convert("RGB").rotate(90)
    out = np.asarray(remove(photo, bg_image=picture, segmenter=shipped))
    fitted = np.asarray(ImageOps.fit(picture, (photo.shape[1], photo.shape[0]), Image.LANCZOS))
    back, person = regions(alpha)
    assert np.array_equal(out[back], fitted[back])
    assert np.array_equal(out[person], photo[person])


def test_blur_changes_the_background_and_not_the_person(shipped, photo, alpha):
    out = np.asarray(remove(photo, blur=6, segmenter=shipped))
    blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(6)))
    back, person = regions(alpha)
    assert np.array_equal(out[back], blurred[back])
    assert (out[back] != photo[back]).any(axis=-1).mean() > 0.5  # the stripes are gone
    assert np.array_equal(out[person], photo[person])


def test_cutout_alpha_is_the_mask_and_transparent_pixels_are_clear(shipped, photo, alpha):
    out = np.asarray(remove(photo, segmenter=shipped))
    assert np.array_equal(out[..., 3], np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
    back, person = regions(alpha)
    assert (out[back] == 0).all() and np.array_equal(out[person][:, :3], photo[person])


def test_crop_trims_to_the_person_plus_the_margin(shipped, photo, alpha):
    out = remove(photo, crop=True, segmenter=shipped)
    left, top, right, bottom = crop_box(alpha)
    assert out.size == (right - left, bottom - top)
    assert out.size[0] < photo.shape[1] * 0.7 and out.size[1] < photo.shape[0] * 0.9
    # the box: the person's extent (inside the pasted portrait) plus 5 % on each side; the
    # mask's edge may sit up to 3 px outside the paste (the guided filter's radius is 2 px at
    # the working size, which this 320 px photo is)
    px, py = (right - left) * 0.05 / 1.1, (bottom - top) * 0.05 / 1.1
    assert PASTE[0] - px - 3 <= left and right <= PASTE[2] + px + 3
    assert PASTE[1] - py - 3 <= top and bottom <= PASTE[3] + py + 3
    assert np.array_equal(
        np.asarray(out), np.asarray(remove(photo, segmenter=shipped))[top:bottom, left:right]
    )


def test_threshold_makes_the_mask_hard_at_that_level(shipped, photo, alpha):
    hard = np.asarray(remove(photo, mask=True, threshold=0.7, segmenter=shipped))
    assert set(np.unique(hard)) == {0, 255}
    assert np.array_equal(hard == 255, alpha >= 0.7)


def test_levels_clear_faint_doubts_and_keep_the_half_threshold(photo):
    raw = Segmenter(alpha_levels=None).predict_mask(photo)
    out = Segmenter().predict_mask(photo)
    low, high = ALPHA_LEVELS
    faint, sure, between = raw <= low, raw >= high, (raw > low) & (raw < high)
    assert faint.sum() > 1000 and sure.sum() > 1000 and between.sum() > 100
    assert (out[faint] == 0).all() and (out[sure] == 1).all()
    assert np.allclose(out, levels(raw, low, high), atol=1e-6)
    assert np.array_equal(out >= 0.5, raw >= 0.5)


def cli_remove(tmp_path, src, *flags) -> np.ndarray:
    out = tmp_path / "cli_out.png"
    assert main(["remove", str(src), "-o", str(out), "-q", "--overwrite", *flags]) == 0
    with Image.open(out) as im:
        return np.asarray(im)


@pytest.mark.parametrize(
    "flags, kwargs",
    [
        (["--bg", "#ff0000"], {"bg": "#ff0000"}),
        (["--blur", "6"], {"blur": 6}),
        (["--crop"], {"crop": True}),
        (["--mask", "--threshold", "0.7"], {"mask": True, "threshold": 0.7}),
        (["--bg-image", str(SAMPLE)], {"bg_image": SAMPLE}),
    ],
)
def test_cli_gives_the_pixels_of_the_api(shipped, scene, tmp_path, flags, kwargs):
    want = np.asarray(remove(scene, segmenter=shipped, **kwargs))
    assert np.array_equal(cli_remove(tmp_path, scene, *flags), want)


def test_server_gives_the_pixels_of_the_api(shipped, scene):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    client = TestClient(create_app(shipped))
    data = scene.read_bytes()
    for params, kwargs in (
        ({"bg": "#ff0000"}, {"bg": "#ff0000"}),
        ({"blur": 6}, {"blur": 6}),
        ({"crop": "true"}, {"crop": True}),
    ):
        r = client.post("/api/remove", params=params, files={"file": ("s.png", data)})
        assert r.status_code == 200, r.text
        got = np.asarray(Image.open(io.BytesIO(r.content)))
        assert np.array_equal(got, np.asarray(remove(scene, segmenter=shipped, **kwargs)))


# EXIF orientation: what is stored, so that a viewer shows the upright photo (inverse of the
# transpose the orientation asks for).
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented(orientation: int, icc: bytes | None = None) -> bytes:
    """The scene stored turned as orientation ``orientation`` says, as PNG bytes with EXIF."""
    upright = scene_photo()
    stored = upright if STORED[orientation] is None else upright.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif, icc_profile=icc)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(shipped, tmp_path, orientation):
    upright_mask = np.asarray(remove(scene_photo(), mask=True, segmenter=shipped))
    data = oriented(orientation)
    assert np.array_equal(np.asarray(remove(data, mask=True, segmenter=shipped)), upright_mask)
    path = tmp_path / f"o{orientation}.png"
    path.write_bytes(data)
    assert np.array_equal(cli_remove(tmp_path, path, "--mask"), upright_mask)


def test_exif_orientation_through_the_server(shipped):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    client = TestClient(create_app(shipped))
    upright_mask = np.asarray(remove(scene_photo(), mask=True, segmenter=shipped))
    for orientation in (3, 6, 7):
        r = client.post("/api/remove?mask=true", files={"file": ("o.png", oriented(orientation))})
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), upright_mask)


def test_exif_and_an_rgb_profile_together_keep_both(shipped, tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "o6.png"
    path.write_bytes(oriented(6, icc))
    out = tmp_path / "out.png"
    assert main(["remove", str(path), "-o", str(out), "-q"]) == 0
    with Image.open(out) as im:
        assert im.size == (320, 240) and im.info.get("icc_profile") == icc
    assert remove(path, segmenter=shipped).info.get("icc_profile") == icc


def fake_profile(space: bytes) -> bytes:
    """An ICC header naming colour space ``space`` (not a usable profile: Little CMS refuses
    it, so the pixels are converted plainly)."""
    header = bytearray(128)
    header[0:4] = (128).to_bytes(4, "big")
    header[12:16] = b"mntr"
    header[16:20] = space
    header[36:40] = b"acsp"
    return bytes(header)


@pytest.mark.parametrize("mode, space", [("CMYK", b"CMYK"), ("L", b"GRAY")])
def test_cmyk_and_gray_profiles_never_label_rgb_outputs(shipped, tmp_path, mode, space):
    image = scene_photo().convert(mode)
    path = tmp_path / "p.jpg"
    image.save(path, "JPEG", quality=95, icc_profile=fake_profile(space))
    decoded = np.asarray(Image.open(path).convert("RGB"))
    out = remove(path, bg="white", segmenter=shipped)
    assert out.info.get("icc_profile") is None
    alpha = shipped.predict_mask(decoded)
    person = alpha == 1
    assert person.sum() > 1000 and np.array_equal(np.asarray(out)[person], decoded[person])
    cli = tmp_path / "cli.png"
    assert main(["remove", str(path), "-o", str(cli), "-q"]) == 0
    with Image.open(cli) as im:
        assert im.info.get("icc_profile") is None


def test_quality_modes_run_their_passes(shipped, photo, alpha):
    from personcut.segmenter import pass_sizes

    assert pass_sizes(320, "fast") == (256,) and pass_sizes(320, "balanced") == (320,)
    assert pass_sizes(320, "best") == (320, 416, 512) and pass_sizes(320, "frame") == (320,)
    # balanced averages one pass with its mirror image's, before the upsampling (linear here)
    raw = Segmenter(alpha_levels=None)
    both = raw.predict_mask(photo, guided=False)
    one = raw.predict_mask(photo, guided=False, quality="frame")
    mirror = raw.predict_mask(np.ascontiguousarray(photo[:, ::-1]), guided=False, quality="frame")
    assert np.abs(both - (one + mirror[:, ::-1]) / 2).max() < 1e-3
    assert np.abs(both - one).max() > 0.01  # the mirror pass changed something
    best = shipped.predict_mask(photo, quality="best")
    fast = shipped.predict_mask(photo, quality="fast")
    for other in (best, fast):
        assert not np.array_equal(other, alpha)
        agree = ((other > 0.5) & (alpha > 0.5)).sum() / ((other > 0.5) | (alpha > 0.5)).sum()
        assert agree > 0.6  # the same person, found a little differently
    # best averages each pass with its mirror image: the mirrored photo gives the mirrored mask
    mirrored = shipped.predict_mask(np.ascontiguousarray(photo[:, ::-1]), quality="best")
    assert np.abs(mirrored[:, ::-1] - best).max() < 0.02
    assert np.array_equal(np.asarray(Segmenter(quality="best").predict_mask(photo)), best)
    with pytest.raises(ValueError, match="quality"):
        Segmenter(quality="slow")


def test_quality_through_the_cli_and_the_server(shipped, scene, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    want = np.asarray(remove(scene, mask=True, quality="best", segmenter=shipped))
    assert np.array_equal(cli_remove(tmp_path, scene, "--mask", "--quality", "best"), want)
    client = TestClient(create_app(shipped))
    r = client.post(
        "/api/remove",
        files={"file": ("s.png", scene.read_bytes())},
        data={"mask": "true", "quality": "best"},
    )
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), want)
    bad = client.post("/api/remove?quality=slow", content=scene.read_bytes())
    assert bad.status_code == 422


def test_decontamination_recovers_the_person_colour_at_soft_edges():
    from personcut.compose import decontaminate

    # a red person fading into a blue background over 8 px: the photo mixes the two there
    h, w = 60, 200
    ramp = np.clip((np.arange(w) - 100) / 8.0, 0, 1).astype(np.float32)
    alpha = np.tile(ramp, (h, 1))
    red, blue = np.array([220, 30, 30], np.float32), np.array([20, 40, 230], np.float32)
    mixed = alpha[..., None] * red + (1 - alpha[..., None]) * blue
    photo = (mixed + 0.5).astype(np.uint8)
    out = decontaminate(photo, alpha)
    band = (alpha > 0.03) & (alpha < 0.97)
    raw_error = np.abs(photo[band].astype(float) - red).mean()
    new_error = np.abs(out[band].astype(float) - red).mean()
    assert new_error < 0.25 * raw_error, (raw_error, new_error)
    assert np.array_equal(out[~band], photo[~band])  # only the mixed pixels change
    hard = (alpha > 0.5).astype(np.float32)
    assert decontaminate(photo, hard) is photo  # nothing mixed: nothing to do


def test_decontamination_is_the_same_in_one_thread_two_or_with_the_helper_busy(photo, alpha):
    from personcut import compose

    assert ((alpha > 0.03) & (alpha < 0.97)).sum() > 1000  # a real band to split
    one = compose.decontaminate(photo, alpha, threads=1)
    two = compose.decontaminate(photo, alpha)
    assert not np.array_equal(one, photo)
    assert np.array_equal(one, two)
    # another photo holding the helper: this one goes on without it, same output
    assert compose._HELPER_FREE.acquire(blocking=False)
    try:
        assert np.array_equal(compose.decontaminate(photo, alpha), one)
    finally:
        compose._HELPER_FREE.release()


def test_no_decontaminate_keeps_the_photo_colours(shipped, photo, alpha, tmp_path):
    raw = np.asarray(remove(photo, decontaminate=False, segmenter=shipped))
    clean = np.asarray(remove(photo, segmenter=shipped))
    mixed = (alpha > 0.03) & (alpha < 0.97)
    shown = raw[..., 3] > 0
    assert np.array_equal(raw[..., :3][shown], photo[shown])
    assert (clean[..., :3][mixed] != photo[mixed]).any(axis=-1).mean() > 0.5
    assert np.array_equal(
        cli_remove(tmp_path, scene_path(tmp_path, photo), "--no-decontaminate"), raw
    )


def scene_path(tmp_path, photo) -> str:
    path = tmp_path / "scene_in.png"
    Image.fromarray(photo).save(path)
    return str(path)
