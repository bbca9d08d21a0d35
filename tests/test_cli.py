import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from personcut.cli import main


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        a = rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / name)
    return folder


def run(args, model):
    return main(["remove", "--model", str(model), "-q", *map(str, args)])


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "personcut" in capsys.readouterr().out


def test_one_file_default_name_and_no_overwrite(photos, tiny_onnx, capsys):
    src = photos / "a.jpg"
    assert run([src], tiny_onnx) == 0
    out = photos / "a.cutout.png"
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == (44, 30)
    stamp = out.stat().st_mtime_ns
    assert run([src], tiny_onnx) == 1
    assert "exists" in capsys.readouterr().err and out.stat().st_mtime_ns == stamp
    assert run([src, "--overwrite"], tiny_onnx) == 0


def test_never_overwrites_an_input(photos, tiny_onnx, capsys):
    src = photos / "b.png"
    before = src.read_bytes()
    assert run([src, "-o", src, "--overwrite"], tiny_onnx) == 1
    assert "is an input" in capsys.readouterr().err and src.read_bytes() == before


def test_folder_to_folder_with_options(photos, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    assert run([photos, "-o", out, "--mask"], tiny_onnx) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").mode == "L"
    assert run([photos / "a.jpg", "-o", tmp_path / "g.jpg", "--bg", "green"], tiny_onnx) == 0
    assert Image.open(tmp_path / "g.jpg").mode == "RGB"


def test_jpeg_needs_an_opaque_background(photos, tiny_onnx, tmp_path, capsys):
    assert run([photos / "a.jpg", "-o", tmp_path / "x.jpg"], tiny_onnx) == 1
    assert "JPEG cannot hold transparency" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_bad_file_in_a_batch_is_listed_and_the_rest_done(photos, tiny_onnx, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    assert run([photos, "-o", out], tiny_onnx) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "2 done, 1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_empty_folder_and_missing_file(tmp_path, tiny_onnx, capsys):
    (tmp_path / "empty").mkdir()
    assert run([tmp_path / "empty", tmp_path / "nope.jpg"], tiny_onnx) == 1
    err = capsys.readouterr().err
    assert "holds no images" in err and "nope.jpg: no such file" in err


def test_stdin_to_stdout(photos, tiny_onnx):
    result = subprocess.run(
        [sys.executable, "-m", "personcut", "remove", "-", "--model", str(tiny_onnx)],
        input=(photos / "a.jpg").read_bytes(),
        capture_output=True,
        check=True,
    )
    assert result.stdout[:4] == b"\x89PNG"


def test_train_and_evaluate_commands(folder_data, tmp_path, capsys):
    import json

    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--out",
            str(out),
            "--set",
            f"data.train=[{folder_data}]",
            "--set",
            "model.width=4",
            "--set",
            "model.depth=2",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=4",
            "--set",
            "train.num_workers=0",
            "--set",
            "data.crop_size=32",
            "--set",
            "data.eval_size=32",
        ]
    )
    assert code == 0 and (out / "last.pt").is_file()
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(out / "last.pt"),
                "--data",
                str(folder_data),
                "--sheet",
                str(tmp_path / "sheet.png"),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert {"person_iou", "miou", "bce", "by_source"} <= result.keys()
    assert result["images"] == 12 and (tmp_path / "sheet.png").is_file()
    assert main(["train", "--set", "train.epoch=1"]) == 2


def test_a_failed_run_creates_no_output_folder(tmp_path, tiny_onnx):
    target = tmp_path / "res" / "out.png"
    assert run([tmp_path / "missing.jpg", "-o", target], tiny_onnx) == 1
    assert not target.exists() and not (tmp_path / "res").exists()


def test_output_with_a_trailing_slash_is_a_folder(photos, tiny_onnx, tmp_path):
    out = tmp_path / "cutouts"
    assert run([photos / "a.jpg", "-o", f"{out}/"], tiny_onnx) == 0
    assert out.is_dir() and (out / "a.png").is_file()


def test_several_inputs_into_a_file_name_are_refused(photos, tiny_onnx, tmp_path, capsys):
    assert run([photos, "-o", tmp_path / "one.png"], tiny_onnx) == 1
    assert "names a file" in capsys.readouterr().err and not (tmp_path / "one.png").exists()


def test_stdin_in_a_batch_goes_into_the_folder(photos, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "personcut",
            "remove",
            "--model",
            str(tiny_onnx),
            "-q",
            "-",
            str(photos / "b.png"),
            "-o",
            str(out),
        ],
        stdin=open(photos / "a.jpg", "rb"),
        capture_output=True,
    ).returncode
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["b.png", "stdin.png"]


def test_closed_stdin_is_a_clear_error(tiny_onnx):
    r = subprocess.run(
        f'"{sys.executable}" -m personcut remove --model "{tiny_onnx}" - <&-',
        shell=True,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "standard input is closed" in r.stderr
    assert "Traceback" not in r.stderr


def test_avif_files_are_found_in_folders(tmp_path, tiny_onnx):
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(folder / "x.avif")
    assert run([folder, "-o", tmp_path / "out"], tiny_onnx) == 0
    assert (tmp_path / "out" / "x.png").is_file()


def test_leftovers_of_a_killed_write_are_removed(photos, tiny_onnx, tmp_path):
    out = tmp_path / "out.png"
    stale = tmp_path / ".out.png.abc123.part"
    stale.write_bytes(b"half")
    assert run([photos / "a.jpg", "-o", out], tiny_onnx) == 0
    assert out.is_file() and not stale.exists()


def test_evaluate_scores_onnx_and_shipped_models_through_the_segmenter(
    folder_data, tiny_onnx, capsys
):
    import json

    assert main(["evaluate", "--model", str(tiny_onnx), "--data", str(folder_data)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scored_through"].startswith("Segmenter") and result["images"] == 12
    assert 0 <= result["person_iou"] <= 1 and set(result["by_source"]) == {"alpha", "beta"}
    assert main(["evaluate", "--model", "personcut", "--data", str(folder_data)]) == 0
    assert json.loads(capsys.readouterr().out)["scored_through"].startswith("Segmenter")


def test_workers_give_the_same_files(photos, tiny_onnx, tmp_path, capsys):
    assert run([photos, "-o", tmp_path / "one", "--workers", "1"], tiny_onnx) == 0
    assert run([photos, "-o", tmp_path / "two", "--workers", "2"], tiny_onnx) == 0
    for name in ("a.png", "b.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert run([photos, "-o", tmp_path / "none", "--workers", "0"], tiny_onnx) == 2
    assert "--workers" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_leftovers_are_found_with_one_listing_per_folder(photos, tiny_onnx, tmp_path, monkeypatch):
    import os

    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".a.png.x1y2.part", out / ".b.png.k9_z.part"]
    keep = [out / ".c.png.abc.part", out / "a.png.part", out / ".a.png"]  # not ours
    for f in stale + keep:
        f.write_bytes(b"half")
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": listings.append(p) or real_scandir(p))
    assert run([photos, "-o", out, "--overwrite"], tiny_onnx) == 0
    assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)
    assert listings.count(out) == 1


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    from personcut.files import write_atomic

    out = tmp_path / "cutout.png"
    out.write_bytes(b"the earlier, complete output")

    def half_then_fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(out, half_then_fail)
    assert out.read_bytes() == b"the earlier, complete output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutout.png"]  # no .part left
    write_atomic(out, b"new")
    assert out.read_bytes() == b"new" and out.stat().st_mode & 0o777 == 0o644
