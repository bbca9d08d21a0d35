"""The GPU path, run here on a tiny pack: scripts/pack_for_device.py packs a data tree the way a
lent machine gets it, and scripts/train_on_device.sh trains the default recipe's config on it
(negatives and self-training labels included) and leaves the files that come back under $OUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import make_pair
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _data_tree(root: Path) -> None:
    """persons-train/-val (with an ignore/ map), backgrounds/ and backdrops-extra/ in two
    subfolders, as ../shared/data has them."""
    rng = np.random.default_rng(3)
    for pack, count in (("persons-train", 6), ("persons-val", 3), ("pseudo-self", 2)):
        for kind in ("images", "masks"):
            (root / pack / kind).mkdir(parents=True)
        for i in range(count):
            image, mask = make_pair(rng, (120, 96))
            Image.fromarray(image).save(root / pack / "images" / f"ccp-{i:03d}.jpg", quality=95)
            Image.fromarray(mask).save(root / pack / "masks" / f"ccp-{i:03d}.png")
    (root / "pseudo-self" / "ignore").mkdir()
    Image.fromarray(np.zeros((120, 96), bool)).save(root / "pseudo-self/ignore/ccp-000.png")
    for folder, count in (("backgrounds", 3), ("backdrops-extra/a", 4), ("backdrops-extra/b", 3)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            noise = rng.integers(0, 255, (90, 150, 3), dtype=np.uint8)
            Image.fromarray(noise).save(root / folder / f"{i:05d}.jpg", quality=95)


def test_pack_then_train_the_default_recipe_on_the_pack(tmp_path):
    data, packed, out = tmp_path / "data", tmp_path / "carry", tmp_path / "out"
    _data_tree(data)
    sets = ["persons-train", "persons-val", "pseudo-self", "backgrounds", "backdrops-extra"]
    cmd = [sys.executable, "scripts/pack_for_device.py", "--data", str(data), "--out", str(packed)]
    cmd += ["--long-side", "64", "--backdrop-side", "64", "--sets", *sets]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "of the device tool's 64 MiB" in result.stdout
    photos = sorted((packed / "persons-train" / "images").iterdir())
    assert len(photos) == 6 and all(p.suffix == ".webp" for p in photos)
    for photo in photos:  # each mask shrunk with its photo, still 0/1
        with (
            Image.open(photo) as im,
            Image.open(packed / "persons-train/masks" / f"{photo.stem}.png") as m,
        ):
            assert im.size == m.size and max(im.size) == 64
            assert set(np.unique(np.asarray(m.convert("L")))) <= {0, 255}
    assert (packed / "pseudo-self/ignore/ccp-000.png").is_file()
    # The even half of each backdrops-extra folder: 2 of a's 4, 2 of b's 3.
    assert sorted(p.name for p in (packed / "backdrops-extra/a").iterdir()) == [
        "00000.webp",
        "00002.webp",
    ]
    assert len(list((packed / "backdrops-extra/b").iterdir())) == 2

    tiny = [
        "model.pretrained=false",
        "model.width=4",
        "train.init=null",
        "train.epochs=1",
        "train.max_steps_per_epoch=1",
        "train.batch_size=2",
        "train.num_workers=0",
        "data.crop_size=32",
        "data.eval_size=64",
    ]
    args = ["bash", "scripts/train_on_device.sh", "s8"]
    for item in tiny:
        args += ["--set", item]
    env = {
        **os.environ,
        "OUT": str(out),
        "DATA": str(packed),
        "CONFIG": "configs/default_stage8.yaml",
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (out / "s8").iterdir()) == [
        "best.safetensors",
        "metrics.csv",
        "train.log",
    ]
    log = (out / "s8" / "train.log").read_text()
    # Both training folders and the packed negatives (the even half) were read.
    assert "8 training images" in log, log
    assert "7 person-free photos for made-up scenes, 4 of them hard negatives" in log, log
