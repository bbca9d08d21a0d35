"""The service's limits, in one dataclass (``personcut serve`` flags set them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Settings:
    """Limits of the service."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    """Cut-outs at once, each its own photo from decode to encode; the session that
    :func:`create_app` makes shares the cores out among them (``threads_per_worker``)."""
    queue_size: int = 64
    """Requests that may wait for a worker; more get 503 with Retry-After. At a few requests a
    second per core, 64 waiting clear well inside ``timeout_s``: a burst of 32 clients is
    served whole (benchmarks/RESULTS.md). Lower it with the timeout, raise it with the cores."""
    timeout_s: float = 60.0
    """Per-request limit for decoding, inference and encoding (504 past it)."""
    read_timeout_s: float = 15.0
    """A request's head must arrive whole within this of the connection opening (or of the
    previous answer on a kept-alive connection), whatever it sends meanwhile; a client that
    sends no body bytes for this long is answered 408 and let go."""
    idle_timeout_s: float = 5.0
    """A kept-alive connection with no new request head for this long is closed."""
    min_body_rate: float = 240.0
    """Bytes a second an upload must average once ``body_grace_s`` has passed (as Kestrel's
    default), so that a body dripped a byte at a time cannot hold a connection for long."""
    body_grace_s: float = 5.0
    max_connections: int = 128
    """Open connections at once (uvicorn's limit_concurrency); more get 503."""
    max_inflight_bytes: int = 256 * 1024 * 1024
    """Upload bytes held by all requests together; beyond it new uploads get 503, so stalled
    uploads cannot grow memory without bound."""
    api_key: str | None = None
    """When set, required on /api/remove as ``X-API-Key`` or ``Authorization: Bearer``."""
