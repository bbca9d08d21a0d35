"""The routes: ``POST /api/remove`` (the cut-out), ``GET /api/health``, ``GET /api/info`` and the
web page at ``/``.

Inference runs in a bounded thread pool off the event loop; requests beyond the pool and its
queue get 503 with Retry-After at once instead of piling up (see admission.py). The service never
fetches URLs: images arrive in the request.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from personcut import __version__
from personcut.cutout import MAX_BLUR, CutoutOptions, cutout
from personcut.images import ImageError
from personcut.segmenter import Segmenter, threads_per_worker
from personcut.server.admission import Admission, Busy
from personcut.server.settings import Settings
from personcut.server.upload import Held, UploadError, read_upload

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {"PNG": "image/png", "WEBP": "image/webp", "JPEG": "image/jpeg"}
IMAGE_ERROR_STATUS = {"unsupported": 415, "too_large": 413, "corrupt": 400, "missing": 400}

UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }
    }
}
"""The upload as the OpenAPI page shows it (the body is read by hand, not by FastAPI)."""

ApiError = UploadError  # one shape for every error answer: status, error, detail, headers


def create_app(segmenter: Segmenter | None = None, settings: Settings | None = None) -> FastAPI:
    """The app, with one model session shared by all requests (when none is given, one whose
    network threads are shared out among the workers)."""
    settings = settings or Settings()
    if settings.api_key is None:
        settings.api_key = os.environ.get("PERSONCUT_API_KEY") or None
    seg = segmenter or Segmenter(threads=threads_per_worker(settings.workers))
    admission = Admission(settings.workers + settings.queue_size, settings.max_inflight_bytes)
    jobs = Jobs(seg, settings, admission)

    app = FastAPI(
        title="personcut",
        version=__version__,
        description="Remove the background behind people in photos.",
    )
    _error_answers(app)

    @app.post(
        "/api/remove",
        summary="Remove the background",
        response_class=Response,
        responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
        openapi_extra=UPLOAD_BODY,
    )
    async def remove_endpoint(
        request: Request,
        mask: bool = Query(False, description="return the 8-bit mask"),
        bg: str | None = Query(None, description="background colour (name or #hex)"),
        blur: float = Query(
            0.0, ge=0, le=MAX_BLUR, description="blur the background by this radius"
        ),
        crop: bool = Query(False, description="trim to the people plus a margin"),
        threshold: float | None = Query(None, ge=0, le=1, description="hard mask at this level"),
        format: str = Query("png", pattern="^(png|webp|jpeg|jpg)$"),
        quality: str | None = Query(None, pattern="^(fast|balanced|best)$"),
        decontaminate: bool = Query(True, description="the person's own colour at the edges"),
    ) -> Response:
        _check_key(request, settings.api_key)
        query = {"mask": mask, "bg": bg, "blur": blur, "crop": crop, "threshold": threshold}
        query.update(format=format, quality=quality, decontaminate=decontaminate)
        held = Held(admission)
        try:
            body, form = await read_upload(request, settings, held)
            return await jobs.run(body, _options(form, query))
        finally:
            held.release()  # whatever happened: the upload's bytes are let go

    _info_routes(app, seg, settings)
    app.state.settings = settings
    app.state.admission = admission
    app.state.segmenter = seg
    return app


class Jobs:
    """Cut-outs run in a bounded pool off the event loop, admitted or turned away (503)."""

    def __init__(self, seg: Segmenter, settings: Settings, admission: Admission) -> None:
        self.seg, self.settings, self.admission = seg, settings, admission
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="personcut")

    async def run(self, body: bytes, options: CutoutOptions) -> Response:
        """Admit the job (or 503), run it in the pool, answer within the timeout (or 504)."""
        settings = self.settings
        try:
            self.admission.take_job()
        except Busy as exc:
            raise ApiError(503, "busy", str(exc), {"Retry-After": "1"}) from exc
        future = self.pool.submit(cutout, self.seg, body, options, settings.max_pixels)
        future.add_done_callback(self.admission.give_job)  # freed when the work ends
        try:
            data = await asyncio.wait_for(asyncio.wrap_future(future), settings.timeout_s)
        except asyncio.TimeoutError as exc:
            raise ApiError(504, "timeout", f"over the {settings.timeout_s:g} s limit") from exc
        except ImageError as exc:
            message = str(exc).replace("<bytes>: ", "")
            if exc.kind == "too_large":  # the library's text names a CLI flag: not for clients
                message = (
                    f"the image is over this service's limit of "
                    f"{settings.max_pixels / 1e6:g} megapixels"
                )
            raise ApiError(IMAGE_ERROR_STATUS.get(exc.kind, 400), exc.kind, message) from exc
        return Response(data, media_type=MEDIA_TYPES[options.format])


def _options(form: dict[str, str], query: dict) -> CutoutOptions:
    """The options of a request: form fields (from the web page) override the query string.
    Form values arrive as text, unchecked by FastAPI: CutoutOptions checks the merged values by
    one set of rules (422 for a bad one)."""
    try:
        return CutoutOptions(
            mask=_flag(form.get("mask"), query["mask"]),
            crop=_flag(form.get("crop"), query["crop"]),
            bg=form.get("bg") or query["bg"],
            blur=_number(form, "blur", query["blur"]),
            threshold=_number(form, "threshold", query["threshold"]),
            format=form.get("format") or query["format"],
            quality=form.get("quality") or query["quality"],
            decontaminate=_flag(form.get("decontaminate"), query["decontaminate"]),
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_option", str(exc)) from exc


def serve(app: FastAPI, host: str, port: int, settings: Settings) -> None:
    """Run ``app`` under uvicorn with the connection limits of ``settings``: at most
    ``max_connections`` open, each request's head due within ``read_timeout_s`` and each
    kept-alive connection closed after ``idle_timeout_s`` without a new request, whatever the
    client sends meanwhile (server/connections.py)."""
    import uvicorn

    from personcut.server.connections import deadline_protocol

    uvicorn.run(
        app,
        host=host,
        port=port,
        http=deadline_protocol(settings.read_timeout_s, settings.idle_timeout_s),
        log_level="info",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=int(settings.idle_timeout_s) or 1,
    )


def _info_routes(app: FastAPI, seg: Segmenter, settings: Settings) -> None:
    """Health, what the service runs, and the web page."""

    @app.get("/api/health", summary="Liveness")
    async def health() -> dict:
        return {"status": "ok", "model_loaded": seg is not None}

    @app.get("/api/info", summary="Model, runtime and limits")
    async def info() -> dict:
        extra = seg.info.extra or {}
        return {
            "version": __version__,
            "model": seg.info.name,
            "model_file": seg.path.name,
            "parameters": extra.get("parameters"),
            "width": extra.get("width"),
            "working_size": seg.info.working_size,
            "runtime": seg.runtime,
            "device": seg.device,
            "limits": {k: v for k, v in asdict(settings).items() if k != "api_key"},
            "api_key_required": bool(settings.api_key),
        }

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _error_answers(app: FastAPI) -> None:
    """Every error is JSON ``{"error": kind, "detail": text}`` with its status."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        # The connection is closed after an error: its body may be unread (an early 401 or
        # 413), and a client that erred is not kept waiting on a kept-alive socket.
        headers = {**(exc.headers or {}), "Connection": "close"}
        return JSONResponse({"error": exc.error, "detail": exc.detail}, exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": "http_error", "detail": exc.detail}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": "invalid_option", "detail": detail}, 422)


def _check_key(request: Request, api_key: str | None) -> None:
    if not api_key:
        return
    given = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = given or auth[7:]
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ApiError(401, "unauthorized", "a valid API key is required (X-API-Key header)")


def _flag(value: str | None, default: bool) -> bool:
    """A form field's yes/no, checked as strictly as FastAPI checks the query string."""
    if value is None or value == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _number(form: dict[str, str], key: str, default: float | None) -> float | None:
    if not form.get(key):
        return default
    try:
        return float(form[key])
    except ValueError:
        raise ValueError(f"{key} must be a number, got {form[key]!r}") from None
