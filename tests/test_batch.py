"""Batch cut-outs on a real Ray: a local one started for the job, and a cluster started with
`ray start --head` and joined by address. Outputs must be the bytes `personcut remove` writes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import scene_photo

from personcut.cli import main

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six photos in two folders, one not an image, one empty."""
    root = tmp_path_factory.mktemp("batch_in")
    (root / "sub").mkdir()
    photo = scene_photo()
    for i in range(3):
        photo.resize((160 + 16 * i, 120)).save(root / f"a{i}.png")
        photo.resize((120, 160 + 8 * i)).save(root / "sub" / f"b{i}.jpg")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "sub" / "empty.jpg").write_bytes(b"")
    return root


def expected(photos: Path, tmp_path: Path) -> Path:
    ref = tmp_path / "ref"
    assert main(["remove", str(photos), "-r", "-o", str(ref), "-q"]) == 1  # the two bad ones
    return ref


def check_run(photos: Path, out: Path, ref: Path) -> None:
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert made == ["a0.png", "a1.png", "a2.png", "sub/b0.png", "sub/b1.png", "sub/b2.png"]
    for rel in made:
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    rows = {Path(r["path"]).name: r for r in table}
    assert len(rows) == 8
    assert rows["broken.png"]["status"] == "error" and "broken.png" in rows["broken.png"]["error"]
    assert rows["empty.jpg"]["status"] == "error" and "empty" in rows["empty.jpg"]["error"]
    ok = rows["a1.png"]
    assert ok["status"] == "ok" and (ok["width"], ok["height"]) == (176, 120)
    assert 0.05 < ok["person_fraction"] < 0.5 and ok["ms"] > 0
    assert ok["output"] == str(out / "a1.png")


def test_batch_on_a_local_ray(photos, tmp_path, capsys):
    ref = expected(photos, tmp_path)
    out = tmp_path / "out"
    assert main(["batch", str(photos), "-o", str(out), "-q"]) == 1  # two photos failed
    assert "6 done, 2 failed, 0 skipped" in capsys.readouterr().err
    check_run(photos, out, ref)
    # a rerun skips what exists (a killed job loses nothing written) and retries the rest
    (out / "sub" / "b1.png").unlink()
    assert main(["batch", str(photos), "-o", str(out), "-q"]) == 1
    assert "1 done, 2 failed, 5 skipped" in capsys.readouterr().err
    assert (out / "sub" / "b1.png").read_bytes() == (ref / "sub" / "b1.png").read_bytes()


def test_batch_on_a_cluster_joined_by_address(photos, tmp_path, capsys):
    ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = subprocess.run(
        [
            ray_cli,
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        ref = expected(photos, tmp_path)
        out = tmp_path / "out"
        code = main(["batch", str(photos), "-o", str(out), "-q", "--address", f"127.0.0.1:{port}"])
        assert code == 1 and "6 done, 2 failed" in capsys.readouterr().err
        check_run(photos, out, ref)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=300)


class _Joined(Exception):
    pass


@pytest.mark.parametrize(
    ("flag", "env", "joined"),
    [(None, None, "local"), (None, "10.0.0.5:6379", "10.0.0.5:6379"), ("auto", "x:1", "auto")],
)
def test_which_ray_a_job_joins(photos, tmp_path, monkeypatch, flag, env, joined):
    """Its own local Ray unless --address or RAY_ADDRESS names one: Ray's own default would
    join whatever `ray start` left on the machine, even a dead one (a stale record hangs)."""
    from personcut import batch

    asked = []

    def init(address=None, **kwargs):
        asked.append(address)
        raise _Joined

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(_Joined):
        batch.run(str(photos), tmp_path / "out", address=flag, progress=False)
    assert asked == [joined]


def test_the_predictor_in_a_users_pipeline(photos):
    """The README's three lines: read_binary_files, map_batches(CutoutPredictor), rows out."""
    from personcut.batch import CutoutPredictor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        files = sorted(str(p) for p in photos.glob("a*.png"))
        ds = ray.data.read_binary_files(files, include_paths=True)
        rows = ds.map_batches(CutoutPredictor, concurrency=1, batch_size=2).take_all()
    finally:
        ray.shutdown()
    assert sorted(Path(r["path"]).name for r in rows) == ["a0.png", "a1.png", "a2.png"]
    assert all(r["status"] == "ok" and r["output"][:8] == b"\x89PNG\r\n\x1a\n" for r in rows)


def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(tmp_path):
    import os
    import signal
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    photo = scene_photo().resize((640, 480))
    for i in range(80):
        photo.rotate(i % 11).save(folder / f"p{i:03d}.png")
    out = tmp_path / "out"
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "personcut",
            "batch",
            str(folder),
            "-o",
            str(out),
            "-q",
            "--batch-size",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while len(list(out.glob("*.png"))) < 3:  # the job is under way
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()
        time.sleep(0.1)
    workers = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and b"MapWorker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert workers, "no Ray worker found to kill"
    os.kill(workers[0], signal.SIGKILL)
    written_before = len(list(out.glob("*.png")))
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0, err[-2000:]
    assert written_before < 80  # the kill came mid-job
    made = sorted(p.name for p in out.glob("*.png"))
    assert made == [f"p{i:03d}.png" for i in range(80)]
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert sorted(Path(r["path"]).name for r in rows) == [f"p{i:03d}.png" for i in range(80)]
    assert {r["status"] for r in rows} == {"ok"}
    ref = tmp_path / "ref"
    assert main(["remove", str(folder / "p007.png"), "-o", str(ref / "p007.png"), "-q"]) == 0
    assert (out / "p007.png").read_bytes() == (ref / "p007.png").read_bytes()


def test_the_predictor_does_not_list_its_folder_for_every_photo(photos, tmp_path, monkeypatch):
    import os

    import numpy as np

    from personcut.batch import CutoutPredictor

    predictor = CutoutPredictor(output_dir=str(tmp_path / "out"), root=str(photos))
    paths = sorted(str(p) for p in photos.glob("a*.png"))
    listings = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": listings.append(p) or real(p))
    rows = predictor({"path": np.array(paths, dtype=object)})
    assert list(rows["status"]) == ["ok"] * 3 and listings == []


def test_the_job_removes_what_a_worker_killed_mid_write_left(photos, tmp_path, monkeypatch):
    """Ray retries a killed worker's photo elsewhere, but the dead worker's temporary file stays
    beside the output: the job sweeps it when it ends (the kill test above hits that window only
    when the kill lands inside a write)."""
    import contextlib

    from personcut import batch

    out = tmp_path / "out"
    left = out / ".a0.png.x1y2z3.part"
    other = out / ".notes.txt.abc.part"  # not an output of this job: kept

    def stream(todo, predictor, actors, batch_size, progress, rows):
        out.mkdir(parents=True, exist_ok=True)
        left.write_bytes(b"half a png")
        other.write_bytes(b"someone else's")

    monkeypatch.setattr(batch, "_ray_session", lambda address: contextlib.nullcontext())
    monkeypatch.setattr(batch, "_stream", stream)
    batch.run(str(photos / "a*.png"), out, progress=False)
    assert not left.exists() and other.exists()
