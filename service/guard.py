"""Which requests are served at all, checked before any route runs (HTTP and WebSocket alike):

- ``Host`` must name this server (``Settings.trusted_hosts``): a page on another site that rebinds its DNS name
  to 127.0.0.1 sends its own name, and gets 403.
- ``Origin``, when a browser sends one, must be the page's own origin (the scheme-less ``host:port`` of the
  request's ``Host``) or one of ``Settings.allowed_origins``: another site's page may not upload, render, open a
  live stream or drive port sessions. Clients that send no ``Origin`` (curl, scripts) are not browsers' pages.

Starlette's ``TrustedHostMiddleware`` answers 400 and has no Origin check, hence this one small middleware
(its wildcard rule, ``*.example.com``, is the same).

``InFlightLimit`` answers 503 to HTTP requests beyond a number in flight: unlike uvicorn's
``limit_concurrency`` it does not count idle connections, which the server's idle timeout closes instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import RETRY_AFTER_S


@dataclass(frozen=True)
class GuardConfig:
    hosts: tuple[str, ...]  # lower-case names or addresses; "*.example.com" matches subdomains; "*" matches all
    origins: tuple[str, ...]  # "scheme://host[:port]" lower-case; "*" matches all

    @staticmethod
    def of(hosts: Sequence[str], origins: Sequence[str]) -> GuardConfig:
        return GuardConfig(tuple(h.lower() for h in hosts), tuple(o.lower().rstrip("/") for o in origins))


def host_name(host_header: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1' (lower-case)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, hosts: Sequence[str]) -> bool:
    name = host_name(host_header)
    if not name:
        return False
    return any(p == "*" or name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in hosts)


def origin_allowed(origin: str, host_header: str, origins: Sequence[str]) -> bool:
    """Same origin as the request's Host (http or https), or listed."""
    origin = origin.strip().lower().rstrip("/")
    if "*" in origins or origin in origins:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc == host_header.strip().lower()


class RequestGuard:
    """403 for a foreign Host or Origin (see the module docstring)."""

    def __init__(self, app: ASGIApp, config: GuardConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get(b"host", "")
        reason = None
        if not host_allowed(host, self.config.hosts):
            reason = "this server does not answer to that Host name (set PERFRNN_ALLOWED_HOSTS to serve it)"
        elif b"origin" in headers and not origin_allowed(headers[b"origin"], host, self.config.origins):
            reason = "requests from other sites' pages are refused (set PERFRNN_ALLOWED_ORIGINS to allow one)"
        if reason is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            # closing before accepting: the server answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
        else:
            await _json(send, 403, reason)


class InFlightLimit:
    """503 (with Retry-After) for an HTTP request beyond ``limit`` in flight. WebSockets have their own slots."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _json(send, 503, f"more than {self.limit} requests in flight: try again later",
                        [(b"retry-after", str(RETRY_AFTER_S).encode())])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _json(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
