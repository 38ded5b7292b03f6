"""How ``perfrnn serve`` (and the tests' real server) runs the app under uvicorn, so that idle clients cannot
exhaust it:

- a connection that sends nothing for ``idle_timeout_s`` is closed, before its first request as between
  requests (uvicorn itself only times out idle keep-alive connections after a first request);
- request heads are bounded (``h11_max_incomplete_event_size``), WebSocket frames and queues too;
- requests in flight, not open connections, are what ``limit_concurrency`` counts (``service.guard``).
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.settings import Settings

MAX_REQUEST_HEAD_BYTES = 16 * 1024  # request line + headers
WS_MAX_FRAME_BYTES = 64 * 1024  # a client message larger than this closes the socket (1009)
WS_MAX_QUEUE = 16  # client messages buffered (the sans-I/O implementation instead reads one message at a time)
WS_PING_S = 20.0  # ping interval, and how long a pong may take before the socket is dropped


class IdleTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the keep-alive timer also running from the moment a connection opens: a
    client that connects and sends nothing is closed after ``timeout_keep_alive`` like an idle keep-alive one
    (any data received cancels the timer, as uvicorn does)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)


def uvicorn_config(app: object, settings: Settings, *, log_level: str = "info",
                   port: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(app, host=settings.host, port=settings.port if port is None else port,  # type: ignore[arg-type]
                          log_level=log_level, http=IdleTimeoutH11Protocol, ws="websockets-sansio",
                          timeout_keep_alive=max(1, round(settings.idle_timeout_s)),
                          h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES, ws_max_size=WS_MAX_FRAME_BYTES,
                          ws_max_queue=WS_MAX_QUEUE, ws_ping_interval=WS_PING_S, ws_ping_timeout=WS_PING_S,
                          server_header=False)
