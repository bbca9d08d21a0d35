"""The attack list (issue 21), each case kept fixed: malformed images are 4xx and one-line errors,
special files are never replaced, clips have a pixel limit and report truncation, the API's
pixel limit holds for every input type, and Pillow's bomb guard is never lifted for the
process."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bomb, scene_photo
from PIL import Image

from personcut.cli import main
from personcut.cutout import remove
from personcut.images import ImageError, load_image


def png_with_broken_exif() -> bytes:
    """A good PNG whose eXIf chunk is garbage: Pillow opens it, reading the EXIF fails."""
    buf = io.BytesIO()
    scene_photo().resize((80, 60)).save(buf, "PNG")
    data = buf.getvalue()
    payload = b"XX\x00\x2a" + b"\x01" * 40  # no TIFF byte order: "not a TIFF file"
    chunk = (
        struct.pack(">I", len(payload))
        + b"eXIf"
        + payload
        + struct.pack(">I", zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF)
    )
    end_of_header = 8 + 25
    return data[:end_of_header] + chunk + data[end_of_header:]


MALFORMED = {
    "avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 64,
    "dds": b"DDS |" + b"\x00" * 3 + b"\xff" * 120,
    "blp": b"BLP2" + b"\x01\x02\x08\x00" + b"\xff" * 100,
    "im": b"Image type: RGB image\r\nName: x\r\nImage size (x*y): 99999*99999\r\n\x1a" + b"\0" * 80,
}


def test_a_broken_exif_block_does_not_break_a_good_photo(shipped, tmp_path):
    data = png_with_broken_exif()
    with Image.open(io.BytesIO(data)) as im:
        with pytest.raises(Exception):  # noqa: B017 - the trap: Pillow itself fails here
            from PIL import ImageOps

            ImageOps.exif_transpose(im)
    assert remove(data, segmenter=shipped).size == (80, 60)
    path = tmp_path / "exif.png"
    path.write_bytes(data)
    assert main(["remove", str(path), "-o", str(tmp_path / "out.png"), "-q"]) == 0


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_files_are_one_line_errors(kind, tmp_path, capsys):
    path = tmp_path / f"bad.{kind}"
    path.write_bytes(MALFORMED[kind])
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert str(path) in str(exc.value)
    assert main(["remove", str(path), "-o", str(tmp_path / "o.png"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err


def test_the_server_answers_malformed_files_with_4xx(shipped):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    client = TestClient(create_app(shipped), raise_server_exceptions=False)
    for kind, body in MALFORMED.items():
        r = client.post("/api/remove", content=body)
        assert 400 <= r.status_code < 500, (kind, r.status_code, r.text)
    assert client.post("/api/remove", content=png_with_broken_exif()).status_code == 200


@pytest.mark.parametrize("special", ["fifo", "symlink", "device"])
def test_overwrite_never_replaces_special_files(shipped, tmp_path, special, capsys):
    src = tmp_path / "in.png"
    scene_photo().resize((80, 60)).save(src)
    target = tmp_path / "out.png"
    if special == "fifo":
        os.mkfifo(target)
    elif special == "symlink":
        (tmp_path / "elsewhere.png").write_bytes(b"keep me")
        target.symlink_to(tmp_path / "elsewhere.png")
    else:
        target = Path("/dev/null")
        if not target.exists():
            pytest.skip("no /dev/null")
    before = target.lstat()
    assert main(["remove", str(src), "-o", str(target), "--overwrite", "-q"]) == 1
    assert "refusing to replace it" in capsys.readouterr().err
    after = target.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    if special == "symlink":
        assert (tmp_path / "elsewhere.png").read_bytes() == b"keep me"


def test_pil_images_and_arrays_are_held_to_max_pixels():
    big = Image.new("L", (3000, 2000))
    with pytest.raises(ImageError, match="megapixels"):
        load_image(big, max_pixels=5_000_000)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(np.zeros((2000, 3000), np.uint8), max_pixels=5_000_000)
    assert load_image(big, max_pixels=None).size == (3000, 2000)


def test_a_high_limit_opens_a_bomb_without_lifting_the_guard_for_others(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", side=14_000)  # 196 MP: over twice Pillow's guard
    guard = Image.MAX_IMAGE_PIXELS
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.add(Image.MAX_IMAGE_PIXELS)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        try:
            assert load_image(bomb, max_pixels=10**9).size == (14_000, 14_000)  # allowed
        except ImageError as exc:  # or found truncated, as Pillow's PNG decoder decides
            assert exc.kind == "corrupt"
    finally:
        stop.set()
        watcher.join()
    assert seen == {guard} and Image.MAX_IMAGE_PIXELS == guard


av = pytest.importorskip("av")


def test_clips_are_held_to_max_pixels(shipped, tmp_path, capsys):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=3, audio=False)  # 96 x 64 frames
    out = tmp_path / "c.webm"
    assert main(["remove", str(clip), "-o", str(out), "--max-pixels", "5000", "-q"]) == 1
    assert "above the limit" in capsys.readouterr().err and not out.exists()


def test_a_truncated_clip_is_reported_and_keeps_what_was_decoded(shipped, tmp_path, capsys):
    from test_video import make_clip

    whole = make_clip(tmp_path / "whole.mkv", frames=30, audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    out = tmp_path / "out.webm"
    assert main(["remove", str(cut), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and str(cut) in err
    with av.open(str(out)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert 5 <= frames < 30


def test_a_trailing_slash_names_a_frame_folder_for_one_clip(shipped, tmp_path):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=3, audio=False)
    assert main(["remove", str(clip), "-o", str(tmp_path / "frames") + "/", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        f"frame_{i:06d}.png" for i in range(3)
    ]


def test_clip_outputs_read_like_photos(shipped, tmp_path):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=2, audio=False)
    assert main(["remove", str(clip), "-o", str(tmp_path / "c.webm"), "-q"]) == 0
    assert main(["remove", str(clip), "-o", str(tmp_path / "f"), "-q"]) == 0
    assert (tmp_path / "c.webm").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o755


def cli(*args, **kw):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "personcut", *map(str, args)], capture_output=True, text=True, **kw
    )


@pytest.fixture()
def photo_file(tmp_path) -> Path:
    path = tmp_path / "p.png"
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)  # its PNG cut-out is far larger than a pipe's buffer
    return path


def test_a_closed_stdout_is_a_line_not_a_traceback(photo_file):
    import subprocess
    import sys

    run = subprocess.run(
        f"{sys.executable} -m personcut remove {photo_file} -o - >&-",
        shell=True,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.returncode == 1 and "standard output is closed" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_pipe_closed_early_is_a_failure(photo_file):
    import subprocess
    import sys

    run = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; {sys.executable} -m personcut remove {photo_file} "
            "-o - --blur 1 | true",  # the reader is gone before the cut-out is ready
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.returncode == 1 and "closed the pipe" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_skip_existing_resumes_a_batch(shipped, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        scene_photo().resize((80, 60)).save(folder / name)
    out = tmp_path / "out"
    assert main(["remove", str(folder), "-o", str(out), "-q"]) == 0
    stamp = (out / "a.png").stat().st_mtime_ns
    (out / "b.png").unlink()  # as if the run was killed before b
    assert main(["remove", str(folder), "-o", str(out), "-q"]) == 1  # without: "exists"
    assert main(["remove", str(folder), "-o", str(out), "-q", "--skip-existing"]) == 0
    assert (out / "a.png").stat().st_mtime_ns == stamp and (out / "b.png").is_file()


def test_leftovers_of_a_killed_clip_are_removed(shipped, tmp_path):
    from test_video import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=2, audio=False)
    stale_file = tmp_path / ".c.webm.x1y2z3.part"
    stale_file.write_bytes(b"half a clip")
    stale_folder = tmp_path / ".frames.a1b2c3.part"
    stale_folder.mkdir()
    (stale_folder / "frame_000000.png").write_bytes(b"half")
    assert main(["remove", str(clip), "-o", str(tmp_path / "c.webm"), "-q"]) == 0
    assert main(["remove", str(clip), "-o", str(tmp_path / "frames"), "-q"]) == 0
    assert not stale_file.exists() and not stale_folder.exists()


@pytest.mark.parametrize("field", ["mask", "crop", "decontaminate"])
def test_form_flags_are_checked_like_the_query(shipped, field):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from personcut.server import create_app

    client = TestClient(create_app(shipped))
    buf = io.BytesIO()
    scene_photo().resize((80, 60)).save(buf, "PNG")
    files = {"file": ("p.png", buf.getvalue())}
    assert client.post("/api/remove", params={field: "maybe"}, files=files).status_code == 422
    assert client.post("/api/remove", data={field: "maybe"}, files=files).status_code == 422
    assert client.post("/api/remove", data={field: "no"}, files=files).status_code == 200


def drip(kind: str, port: int, stop: threading.Event, count: int = 130) -> list:
    """``count`` hostile connections of one kind, kept dripping (a byte each per 0.5 s) until
    ``stop``; none reconnects."""
    import socket

    heads = {
        # a first request answered, then a next head that never ends (keep-alive slowloris)
        "keepalive": b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n",
        # a body promised, sent a byte at a time
        "body": b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
        # answered 413 at once; the client goes on sending its body
        "after413": b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
    }
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(heads[kind])
            s.setblocking(False)
            socks.append(s)
        except OSError:
            pass

    # What is dripped: after the first answer, a next head that never ends (valid bytes, so
    # that only a deadline ends it); into a body, any bytes.
    trickle = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " if kind == "keepalive" else b""
    sent = [0] * len(socks)

    def loop():
        while not stop.is_set():
            for i, s in enumerate(socks):
                try:
                    s.recv(65536)
                except (BlockingIOError, OSError):
                    pass
                byte = trickle[sent[i] : sent[i] + 1] or b"a"
                try:
                    s.send(byte)
                    sent[i] += 1
                except (BlockingIOError, OSError):
                    pass
            stop.wait(0.5)
        for s in socks:
            s.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return [thread]


@pytest.mark.parametrize("kind", ["keepalive", "body", "after413"])
def test_slow_clients_do_not_shut_out_a_normal_one(tiny_onnx, kind):
    pytest.importorskip("uvicorn")
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from conftest import live_server

    flags = ["--read-timeout", "2", "--idle-timeout", "1"]
    with live_server(tiny_onnx, *flags) as url:
        port = urllib.parse.urlparse(url).port
        stop = threading.Event()
        threads = drip(kind, port, stop)
        try:
            start, served = time.monotonic(), None
            while time.monotonic() - start < 20 and served is None:
                try:
                    with urllib.request.urlopen(url + "/api/health", timeout=5) as r:
                        served = r.status
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            assert served == 200, f"{kind}: a normal client was not served within 20 s"
        finally:
            stop.set()
            for t in threads:
                t.join()


def read_all(sock, seconds: float = 30) -> bytes:
    """Everything the server sends until it closes the connection (or ``seconds`` pass: then
    the test fails on what it got)."""
    import time

    sock.settimeout(seconds)
    data, end = b"", time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return data + b"<closed>"
        data += chunk
    return data


@pytest.fixture()
def strict_server(tiny_onnx):
    import urllib.parse

    from conftest import live_server

    with live_server(tiny_onnx, "--read-timeout", "2", "--idle-timeout", "1") as url:
        yield urllib.parse.urlparse(url).port


def test_a_kept_alive_connection_dripping_a_head_is_closed(strict_server):
    import socket
    import time

    s = socket.create_connection(("127.0.0.1", strict_server), timeout=30)
    s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b" 200 " in s.recv(1000)
    stop = time.monotonic() + 30
    closed = False
    for byte in b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
        try:
            s.send(bytes([byte]))
        except OSError:
            closed = True
            break
        s.settimeout(0.3)
        try:
            if s.recv(100) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        assert time.monotonic() < stop
    assert closed  # within the idle deadline, however often the client sends a byte


def test_an_upload_dripped_a_byte_at_a_time_is_answered_408(strict_server):
    import socket

    s = socket.create_connection(("127.0.0.1", strict_server), timeout=30)
    s.sendall(b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    got = b""
    for _ in range(40):  # a byte every half second: far below 240 bytes a second
        try:
            s.send(b"a")
        except OSError:
            break
        s.settimeout(0.5)
        try:
            got += s.recv(1000)
        except TimeoutError:
            continue
        if got:
            got += read_all(s, seconds=10)  # the JSON body may come in a later packet
            break
    assert b" 408 " in got and b"too slow" in got


def test_an_early_error_closes_the_connection(strict_server):
    import socket

    s = socket.create_connection(("127.0.0.1", strict_server), timeout=30)
    s.sendall(b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\nabc")
    answer = read_all(s, seconds=20)
    assert b" 413 " in answer and answer.endswith(b"<closed>")
    assert b"connection: close" in answer.lower()


def test_a_client_that_leaves_mid_upload_is_no_traceback():
    pytest.importorskip("fastapi")
    import asyncio

    from starlette.requests import ClientDisconnect

    from personcut.server.admission import Admission
    from personcut.server.settings import Settings
    from personcut.server.upload import Held, UploadError, _read_body

    class Leaving:
        def stream(self):
            async def chunks():
                yield b"abc"
                raise ClientDisconnect()

            return chunks()

    admission = Admission(10, 10**9)
    held = Held(admission)
    with pytest.raises(UploadError) as exc:
        asyncio.run(_read_body(Leaving(), Settings(), held, 10**6))
    assert exc.value.error == "disconnected"
    held.release()
    assert admission.bytes == 0


def server_pid(port: int) -> int:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and str(port).encode() in cmd:
                return int(pid)
    raise AssertionError("server process not found")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_memory_returns_after_a_burst_of_large_uploads(tiny_onnx):
    pytest.importorskip("uvicorn")
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from conftest import live_server

    body = os.urandom(19 * 1024 * 1024)
    with live_server(tiny_onnx) as url:
        pid = server_pid(urllib.parse.urlparse(url).port)
        base = rss_mb(pid)
        codes = []

        def upload():
            req = urllib.request.Request(
                url + "/api/remove", data=body, headers={"content-type": "image/png"}
            )
            try:
                urllib.request.urlopen(req, timeout=120)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)
            except OSError:  # turned away (503 and closed) while still sending: a reset
                codes.append(503)

        threads = [threading.Thread(target=upload) for _ in range(30)]
        for t in threads:
            t.start()
        peak = 0.0
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)
        for _ in range(50):  # let the server finish letting go (it trims as the count empties)
            after = rss_mb(pid)
            if after < base + 150:
                break
            time.sleep(0.2)
        assert codes and set(codes) <= {415, 503}  # not images; some turned away when full
        assert peak > base + 150  # the burst did take memory
        assert after < base + 150, f"base {base:.0f} MB, peak {peak:.0f}, after {after:.0f}"
