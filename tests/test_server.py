import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from personcut import Segmenter  # noqa: E402
from personcut.server import Settings, create_app  # noqa: E402


def png_bytes(size=(40, 30)) -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def seg(tiny_onnx):
    return Segmenter(tiny_onnx)


@pytest.fixture()
def client(seg):
    return TestClient(create_app(seg, Settings(max_upload_bytes=200_000, max_pixels=50_000)))


def open_image(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


def test_multipart_and_raw_body(client):
    r = client.post("/api/remove", files={"file": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert open_image(r).mode == "RGBA" and open_image(r).size == (40, 30)
    raw = client.post(
        "/api/remove", content=png_bytes(), headers={"content-type": "application/octet-stream"}
    )
    assert raw.status_code == 200 and raw.content == r.content


@pytest.mark.parametrize(
    "params, mode, ctype",
    [
        ({"mask": "true"}, "L", "image/png"),
        ({"bg": "#ff0000"}, "RGB", "image/png"),
        ({"blur": "4", "format": "jpeg"}, "RGB", "image/jpeg"),
        ({"format": "webp"}, "RGBA", "image/webp"),
        ({"threshold": "0.5", "mask": "1"}, "L", "image/png"),
    ],
)
def test_options(client, params, mode, ctype):
    r = client.post("/api/remove", params=params, content=png_bytes())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ctype and open_image(r).mode == mode


@pytest.mark.parametrize("quality", ["fast", "best"])
def test_quality_reaches_the_model_from_the_query_and_the_form(client, seg, quality):
    photo = Image.open(io.BytesIO(png_bytes((64, 48))))
    want = np.asarray(seg.predict_mask(photo, quality=quality))
    assert not np.array_equal(want, np.asarray(seg.predict_mask(photo)))  # the modes differ
    expected = np.round(want * 255)
    query = client.post(
        "/api/remove", params={"mask": 1, "quality": quality}, content=png_bytes((64, 48))
    )
    form = client.post(
        "/api/remove",
        files={"file": ("a.png", png_bytes((64, 48)), "image/png")},
        data={"mask": "1", "quality": quality},
    )
    for r in (query, form):
        assert r.status_code == 200, r.text
        assert np.abs(np.asarray(open_image(r), np.float32) - expected).max() <= 1


def test_form_options_and_crop(client):
    r = client.post(
        "/api/remove",
        files={"file": ("a.png", png_bytes(), "image/png")},
        data={"bg": "white", "crop": "true"},
    )
    assert r.status_code == 200 and open_image(r).mode == "RGB"


@pytest.mark.parametrize(
    "body, params, status, error",
    [
        (b"", {}, 400, "empty"),
        (b"hello, not an image", {}, 415, "unsupported"),
        (png_bytes()[:60], {}, 400, "corrupt"),
        (png_bytes((300, 300)), {}, 413, "too_large"),  # 90k pixels > 50k
        (b"x" * 300_000, {}, 413, "too_large"),  # bytes > 200k
        (png_bytes(), {"format": "jpeg"}, 422, "invalid_option"),
        (png_bytes(), {"bg": "notacolour"}, 422, "invalid_option"),
        (png_bytes(), {"threshold": "2"}, 422, "invalid_option"),
    ],
)
def test_errors_are_json(client, body, params, status, error):
    r = client.post("/api/remove", params=params, content=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["detail"]


def test_health_info_docs_and_page(client):
    assert client.get("/api/health").json() == {"status": "ok", "model_loaded": True}
    info = client.get("/api/info").json()
    assert info["runtime"] == "onnxruntime" and info["limits"]["max_pixels"] == 50_000
    assert "api_key" not in info["limits"]
    assert client.get("/docs").status_code == 200
    assert "/api/remove" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "personcut" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/nope").json()["error"] == "http_error"


def test_api_key(seg):
    client = TestClient(create_app(seg, Settings(api_key="s3cret")))
    assert client.post("/api/remove", content=png_bytes()).status_code == 401
    bad = client.post("/api/remove", content=png_bytes(), headers={"X-API-Key": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert (
        client.post("/api/remove", content=png_bytes(), headers={"X-API-Key": "s3cret"}).status_code
        == 200
    )
    assert (
        client.post(
            "/api/remove", content=png_bytes(), headers={"Authorization": "Bearer s3cret"}
        ).status_code
        == 200
    )
    assert client.get("/api/health").status_code == 200  # only /api/remove is guarded


class SlowSegmenter:
    """Wraps a segmenter and holds each inference until released."""

    def __init__(self, seg, gate: threading.Event):
        self.seg, self.gate = seg, gate
        self.info, self.path, self.runtime, self.device = seg.info, seg.path, "x", "cpu"

    def predict_rgb(self, rgbs):
        self.gate.wait(5)
        return self.seg.predict_rgb(rgbs)


def wait_for(condition, deadline_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds (a generous deadline, not a sleep that guesses)."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_full_queue_gives_503_with_retry_after_and_timeouts_504(seg):
    gate = threading.Event()
    app = create_app(SlowSegmenter(seg, gate), Settings(workers=1, queue_size=1, timeout_s=0.5))
    client = TestClient(app)
    results = []

    def call():
        results.append(client.post("/api/remove", content=png_bytes()))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: app.state.admission.jobs == 2)  # both admitted: one running, one queued
    third = client.post("/api/remove", content=png_bytes())
    assert third.status_code == 503 and third.headers["retry-after"] == "1"
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [504, 504]
    gate.set()
    wait_for(lambda: app.state.admission.jobs == 0)  # the abandoned work ends, slots free
    assert client.post("/api/remove", content=png_bytes()).status_code == 200


@pytest.mark.parametrize(
    "field, value",
    [
        ("blur", "inf"),
        ("blur", "nan"),
        ("blur", "2000"),
        ("blur", "-1"),
        ("threshold", "5"),
        ("threshold", "nan"),
        ("threshold", "-0.5"),
    ],
)
def test_form_options_are_checked_like_query_options(client, field, value):
    r = client.post(
        "/api/remove", files={"file": ("a.png", png_bytes(), "image/png")}, data={field: value}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_option" and field in r.json()["detail"]
    q = client.post("/api/remove", params={field: value}, content=png_bytes())
    assert q.status_code == 422 and q.json()["error"] == "invalid_option"


def test_too_large_tells_remote_clients_the_limit_not_a_cli_flag(client):
    import io

    buf = io.BytesIO()
    Image.new("RGB", (300, 300), "gray").save(buf, "PNG")  # few bytes, 90k pixels > 50k
    r = client.post("/api/remove", content=buf.getvalue())
    assert r.status_code == 413
    assert "--" not in r.json()["detail"] and "megapixels" in r.json()["detail"]


def test_a_form_file_just_over_the_limit_is_refused(client):
    # The form's room for boundaries and fields (64 kB) must not become room for a larger file.
    r = client.post("/api/remove", files={"file": ("a.png", b"x" * 200_001, "image/png")})
    assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_chunked_multipart_upload_stops_at_the_limit(client, monkeypatch):
    # No Content-Length: bytes must be counted as they arrive, not spooled whole first.
    import tempfile

    boundary = "xyz"

    def body():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        yield head
        for _ in range(200):  # 200 x 64 kB = 12.8 MB against a 200 kB limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    import starlette.formparsers

    spooled = []
    real = tempfile.SpooledTemporaryFile

    def spy(*args, **kwargs):
        spooled.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", spy)
    r = client.post(
        "/api/remove",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert not spooled  # (the test client sends the whole body; a real server stops early)


def test_uploads_beyond_the_bytes_in_flight_get_503_and_are_let_go(seg):
    app = create_app(seg, Settings(max_inflight_bytes=3_000))
    client = TestClient(app)
    r = client.post("/api/remove", content=b"x" * 5_000)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    ok = client.post("/api/remove", content=png_bytes((8, 8)))  # small: room again
    assert ok.status_code == 200, ok.text


def test_default_limits_serve_a_burst_of_32_clients():
    settings = Settings()
    assert settings.workers + settings.queue_size >= 32 and settings.max_connections >= 32


@pytest.fixture()
def slow_server(tiny_onnx):
    """A real server (uvicorn, sockets) with a 1-second read timeout."""
    import urllib.parse

    from conftest import live_server

    with live_server(tiny_onnx, "--read-timeout", "1") as url:
        yield urllib.parse.urlparse(url).port


def test_slow_clients_are_let_go(slow_server):
    import socket

    # Slow headers: the head never completes; the server hangs up after the read timeout.
    head = socket.create_connection(("127.0.0.1", slow_server), timeout=60)
    head.sendall(b"POST /api/remove HTTP/1.1\r\nHost: x\r\n")
    assert head.recv(100) == b""  # closed by the server (not by our generous socket timeout)
    # Slow body: headers promise 1000 bytes, 10 arrive; the answer is 408.
    body = socket.create_connection(("127.0.0.1", slow_server), timeout=60)
    body.sendall(
        b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000\r\n\r\n" + b"x" * 10
    )
    assert b" 408 " in body.recv(200).split(b"\r\n")[0] + b" "
