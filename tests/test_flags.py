"""Flags and entry points that had no test: -r with subfolders, --format, --max-pixels, --size,
--batch-size, --device, PERSONCUT_API_KEY, --max-connections, the top-level API."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import scene_photo
from PIL import Image

import personcut
from personcut.cli import main


def remove_cli(*args) -> int:
    return main(["remove", "-q", *map(str, args)])


@pytest.fixture()
def tree(tmp_path):
    """in/a.png, in/sub/b.jpg, in/sub/deeper/c.png: the scene at three sizes."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    photo = scene_photo()
    photo.save(root / "a.png")
    photo.resize((160, 120)).save(root / "sub" / "b.jpg")
    photo.resize((200, 150)).save(root / "sub" / "deeper" / "c.png")
    return root


def test_recursive_folders_are_mirrored(tree, tmp_path):
    out = tmp_path / "out"
    assert remove_cli(tree, "-r", "-o", out) == 0
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    with Image.open(out / "sub" / "deeper" / "c.png") as im:
        assert im.size == (200, 150) and im.mode == "RGBA"
    assert remove_cli(tree, "-o", tmp_path / "flat") == 0  # without -r: the top folder only
    assert [p.name for p in (tmp_path / "flat").iterdir()] == ["a.png"]


@pytest.mark.parametrize("fmt, pil, suffix", [("webp", "WEBP", ".webp"), ("jpeg", "JPEG", ".jpg")])
def test_format_sets_the_encoding_and_the_names(tree, tmp_path, fmt, pil, suffix):
    out = tmp_path / "out"
    args = ["--bg", "white"] if fmt == "jpeg" else []
    assert remove_cli(tree, "-o", out, "--format", fmt, *args) == 0
    (made,) = out.iterdir()
    assert made.name == "a" + suffix
    with Image.open(made) as im:
        assert im.format == pil


def test_max_pixels_refuses_larger_photos_and_does_the_rest(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert remove_cli(tree, "-r", "-o", out, "--max-pixels", 40_000) == 1
    err = capsys.readouterr().err  # a.png: 76,800 pixels; b and c: 19,200 and 30,000
    assert "a.png: 320x240 is 0.0768 megapixels, above the limit of 0.04" in err
    assert sorted(p.name for p in out.rglob("*.png")) == ["b.png", "c.png"]


def test_size_is_the_working_size(tree, tmp_path):
    small = personcut.Segmenter(working_size=96)
    want = personcut.remove(tree / "a.png", mask=True, segmenter=small)
    assert remove_cli(tree / "a.png", "-o", tmp_path / "m.png", "--mask", "--size", 96) == 0
    got = Image.open(tmp_path / "m.png")
    assert np.array_equal(np.asarray(got), np.asarray(want))
    default = personcut.remove(tree / "a.png", mask=True)
    assert not np.array_equal(np.asarray(default), np.asarray(want))  # the flag changed it


def test_batch_size_and_device_give_the_same_files(tree, tmp_path):
    runs = {
        "one": [],
        "batched": ["--batch-size", "3", "--workers", "1"],
        "cpu": ["--device", "cpu"],
    }
    for name, flags in runs.items():
        assert remove_cli(tree, "-r", "-o", tmp_path / name, *flags) == 0
    for rel in ("a.png", "sub/b.png", "sub/deeper/c.png"):
        one = (tmp_path / "one" / rel).read_bytes()
        assert one == (tmp_path / "cpu" / rel).read_bytes()
        a = np.asarray(Image.open(tmp_path / "batched" / rel)).astype(int)
        b = np.asarray(Image.open(io.BytesIO(one))).astype(int)
        assert np.abs(a - b).max() <= 2  # a padded batch moves a few edge values by a step


def test_api_key_from_the_environment(shipped, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    monkeypatch.setenv("PERSONCUT_API_KEY", "s3cret")
    client = TestClient(create_app(shipped))
    data = io.BytesIO()
    scene_photo().save(data, "PNG")
    assert client.post("/api/remove", content=data.getvalue()).status_code == 401
    ok = client.post("/api/remove", content=data.getvalue(), headers={"x-api-key": "s3cret"})
    assert ok.status_code == 200
    assert client.get("/api/info").json()["api_key_required"] is True


def test_max_connections_turns_away_the_extra_ones(tiny_onnx):
    pytest.importorskip("uvicorn")
    import socket
    import urllib.error
    import urllib.parse
    import urllib.request

    from conftest import live_server

    with live_server(tiny_onnx, "--max-connections", "2") as url:
        port = urllib.parse.urlparse(url).port
        # two connections open (uvicorn counts connections, busy or not, against the limit);
        # they were accepted before the next one connects, so its request finds the limit
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(url + "/api/health", timeout=30)
        assert busy.value.code == 503
        for s in held:
            s.close()


def test_top_level_api(shipped, tmp_path):
    from personcut.cutout import CutoutOptions, remove
    from personcut.segmenter import Segmenter
    from personcut.video import remove_video

    assert personcut.remove is remove and personcut.Segmenter is Segmenter
    assert personcut.CutoutOptions is CutoutOptions and personcut.remove_video is remove_video
    out = personcut.remove(scene_photo(), bg="white")
    assert out.mode == "RGB" and out.size == (320, 240)
    assert sorted(personcut.__all__) == sorted(
        ["CutoutOptions", "Segmenter", "__version__", "remove", "remove_video"]
    )
    with pytest.raises(AttributeError):
        personcut.nothing_here  # noqa: B018
