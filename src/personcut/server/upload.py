"""Reading the image of a request: from multipart ``file`` or the raw body, counted as it
arrives so that an upload over the limit stops at once (nothing spooled to disk), and a client
that stops sending is let go."""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

from personcut.server.admission import Admission, Busy
from personcut.server.settings import Settings

MULTIPART_OVERHEAD = 64 * 1024
"""Room for multipart boundaries, headers and form fields beside the file itself."""


class UploadError(Exception):
    """A request whose upload cannot be used; ``status`` and ``error`` say how to answer."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class Held:
    """Upload bytes this request holds in the service's count, let go together at the end."""

    def __init__(self, admission: Admission) -> None:
        self.admission, self.bytes = admission, 0

    def take(self, n: int) -> None:
        self.admission.take_bytes(n)
        self.bytes += n

    def release(self) -> None:
        self.admission.give_bytes(self.bytes)
        self.bytes = 0


async def read_upload(
    request: Request, settings: Settings, held: Held
) -> tuple[bytes, dict[str, str]]:
    """The image bytes and any form fields (as text). Raises UploadError for a body over the
    limit (413), a client silent for ``read_timeout_s`` (408), a full service (503), no file
    (400)."""
    too_large = UploadError(413, "too_large", f"upload over {settings.max_upload_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + 4096:
        raise too_large
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    limit = settings.max_upload_bytes + (MULTIPART_OVERHEAD if multipart else 0)
    body = await _read_body(request, settings, held, limit)
    form: dict[str, str] = {}
    if multipart:
        body, form = await _parse_form(request, body, settings)
    if len(body) > settings.max_upload_bytes:
        raise too_large
    if not body:
        raise UploadError(400, "empty", "no image in the request")
    return body, form


async def _read_body(request: Request, settings: Settings, held: Held, limit: int) -> bytes:
    # Counted as they arrive, whatever the headers say (a chunked upload has no Content-Length).
    # Each chunk must come within read_timeout_s, and the body as a whole must keep up
    # min_body_rate after body_grace_s: a byte now and then does not keep a connection.
    received = bytearray()
    stream = request.stream().__aiter__()
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        # The latest the next byte may come: the rate's deadline, or the read timeout.
        due = start + settings.body_grace_s + (len(received) + 1) / settings.min_body_rate
        wait = max(0.0, min(settings.read_timeout_s, due - loop.time()))
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), wait)
        except StopAsyncIteration:
            break
        except ClientDisconnect as exc:  # the client left: nothing to answer, no traceback
            raise UploadError(400, "disconnected", "the client closed the upload") from exc
        except asyncio.TimeoutError as exc:
            raise UploadError(
                408,
                "timeout",
                f"upload too slow: {len(received)} bytes in {loop.time() - start:.0f} s "
                f"(at least {settings.min_body_rate:g} bytes/s, and data every "
                f"{settings.read_timeout_s:g} s)",
            ) from exc
        try:
            held.take(len(chunk))
        except Busy as exc:
            raise UploadError(503, "busy", str(exc), {"Retry-After": "1"}) from exc
        received += chunk
        if len(received) > limit:
            raise UploadError(413, "too_large", f"upload over {settings.max_upload_bytes} bytes")
    return bytes(received)


async def _parse_form(
    request: Request, body: bytes, settings: Settings
) -> tuple[bytes, dict[str, str]]:
    """The multipart ``file`` and the text fields of an already read body."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    data = await Request(request.scope, replay).form()
    upload = data.get("file")
    if upload is None or isinstance(upload, str):
        raise UploadError(400, "no_file", "send the image as the multipart field 'file'")
    content = await upload.read(settings.max_upload_bytes + 1)
    return content, {k: v for k, v in data.items() if isinstance(v, str)}
