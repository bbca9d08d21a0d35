"""Admission control: at most ``workers + queue_size`` jobs in the service and at most
``max_inflight_bytes`` of uploads held at once; beyond either, a request is answered 503 at once
instead of piling up, so memory stays flat under load."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading

TRIM_AFTER = 64 * 1024 * 1024
"""Upload bytes let go since the last trim after which memory is handed back to the system."""


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere: freed upload buffers stay in the allocator's
    arenas (a burst of 30 uploads of 19 MB left the server at 1.1 GB) until trimmed."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


class Busy(Exception):
    """The service is full; the message says of what."""


class Admission:
    """Counts jobs and upload bytes in the service (thread-safe)."""

    def __init__(self, max_jobs: int, max_bytes: int) -> None:
        self.max_jobs, self.max_bytes = max_jobs, max_bytes
        self.jobs = self.bytes = 0
        self.freed = 0  # upload bytes let go since the last trim
        self._lock = threading.Lock()

    def take_bytes(self, n: int) -> None:
        """Hold ``n`` more upload bytes, or raise Busy."""
        with self._lock:
            if self.bytes + n > self.max_bytes:
                raise Busy("too many uploads in progress; retry shortly")
            self.bytes += n

    def give_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes -= n
            self.freed += n
            trim = self.bytes == 0 and self.freed >= TRIM_AFTER and _TRIM is not None
            if trim:
                self.freed = 0
        if trim:  # no upload held and many freed: give the memory back (a few ms)
            # Failed jobs keep their upload alive through exception tracebacks (reference
            # cycles) until the collector runs, which an idle server rarely triggers.
            gc.collect()
            _TRIM(0)

    def take_job(self) -> None:
        """Admit one more job, or raise Busy."""
        with self._lock:
            if self.jobs >= self.max_jobs:
                raise Busy("too many requests in progress; retry shortly")
            self.jobs += 1

    def give_job(self, *_args) -> None:
        """Let a job go (usable as a future's done-callback: the slot frees when the work
        ends, not when the client stops waiting)."""
        with self._lock:
            self.jobs -= 1
