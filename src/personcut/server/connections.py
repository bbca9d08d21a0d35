"""Deadlines on connections, so that slow clients cannot hold the server's sockets.

uvicorn alone waits for a request head as long as bytes keep coming, and resets its keep-alive
timer on any byte: 127 connections that each send a byte a second would keep every other
client at 503 for as long as they like. Here a connection gets one deadline at a time, which
data does not move: the head of its first request is due within ``head_timeout`` of connecting;
after each answer, the next head is due within ``idle_timeout``. A connection whose deadline
passes with no request in progress is closed. Once a head is in, the app's own limits hold
(upload.py: data every read timeout and a minimum body rate).
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol


def deadline_protocol(head_timeout: float, idle_timeout: float) -> type[H11Protocol]:
    """An h11 protocol class for ``uvicorn.run(http=...)`` with these deadlines."""

    class DeadlineH11(H11Protocol):
        _deadline = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(head_timeout)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._busy():  # a whole head is in: the request runs under the app's limits
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self._busy():
                self._arm(idle_timeout)

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _busy(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self._busy() and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11
