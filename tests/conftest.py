"""Shared fixtures: made-up data (squares of "person" on noise) and a tiny trained model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_pair(rng: np.random.Generator, size=(48, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A noisy dark image with one bright rectangle, and its mask."""
    h, w = size
    image = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    mask[y : y + h // 2, x : x + w // 2] = 255
    image[mask > 0] = rng.integers(170, 255, 3, dtype=np.uint8)
    return image, mask


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory) -> Path:
    """images/ + masks/ with 12 pairs named like the team's packs (two sources)."""
    root = tmp_path_factory.mktemp("folder_data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        image, mask = make_pair(rng)
        stem = f"{'alpha' if i % 2 else 'beta'}-{i:03d}"
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def tiny_config(data: Path, out: Path, **train):
    from personcut.train.config import Config, DataConfig, ModelConfig, TrainConfig

    return Config(
        model=ModelConfig(width=4, depth=2),
        data=DataConfig(
            train=[str(data)], val=[str(data)], crop_size=32, eval_size=48, rotate_degrees=0
        ),
        train=TrainConfig(
            out_dir=str(out),
            epochs=1,
            batch_size=4,
            num_workers=0,
            lr=1e-2,
            warmup_epochs=0.0,
            **train,
        ),
    )


@pytest.fixture(scope="session")
def tiny_run(folder_data, tmp_path_factory) -> Path:
    """A width-4 model trained for one short epoch: its run folder."""
    from personcut.train.loop import fit

    out = tmp_path_factory.mktemp("tiny_run")
    fit(tiny_config(folder_data, out))
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run) -> Path:
    from personcut.train.export import export_checkpoint

    path = tiny_run / "tiny.onnx"
    export_checkpoint(tiny_run / "best.pt", path)
    return path


def png_bomb(path: Path, side: int = 50_000) -> Path:
    """A few-hundred-byte PNG whose header declares side x side pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    body = zlib.compress(b"\0" * (side + 1) * 4)  # a few rows; the rest is missing
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


@contextlib.contextmanager
def live_server(model: Path, *flags: str):
    """`personcut serve` in a subprocess on a free loopback port; yields its base URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "personcut", "serve", "--port", str(port), "--model", str(model)]
    proc = subprocess.Popen([*cmd, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # generous: a busy machine starts slowly
        while True:
            try:
                urllib.request.urlopen(url + "/api/health", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail("server did not start: " + proc.stderr.read().decode())
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
PASTE = (130, 60, 290, 220)
"""Where :func:`scene_photo` puts the person (left, top, right, bottom)."""


def scene_photo() -> Image.Image:
    """A photo with a person in one place: the sample portrait, 160 px, pasted right of centre
    on a 320 x 240 striped green backdrop (texture, so that blurring it changes it)."""
    back = np.zeros((240, 320, 3), np.uint8)
    back[:] = (90, 140, 70)
    back[:, ::8] = (40, 90, 40)
    back[:, 1::8] = (40, 90, 40)
    image = Image.fromarray(back)
    left, top, right, bottom = PASTE
    image.paste(Image.open(SAMPLE).convert("RGB").resize((right - left, bottom - top)), PASTE[:2])
    return image


@pytest.fixture(scope="session")
def shipped():
    """The shipped default model: a test model that really finds people (about 30 ms a photo)."""
    from personcut import Segmenter

    return Segmenter()


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    scene_photo().save(path)
    return path
