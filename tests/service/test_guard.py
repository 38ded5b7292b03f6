"""service/guard.py: Host and Origin matching, and the limit on requests in flight; and bodies that are not
JSON get 400 from every JSON route, however they are malformed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.guard import InFlightLimit, host_allowed, host_name, origin_allowed


@pytest.mark.parametrize(("header", "name"), [("example.com:8000", "example.com"), ("[::1]:8000", "::1"),
                                              ("LOCALHOST", "localhost"), ("::1", "::1"), ("[::1", "")])
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_host_and_origin_rules() -> None:
    hosts = ["127.0.0.1", "localhost", "*.studio.lan"]
    assert host_allowed("127.0.0.1:8000", hosts) and host_allowed("a.studio.lan", hosts)
    assert not host_allowed("studio.lan.evil.example", hosts) and not host_allowed("", hosts)
    assert not host_allowed("evilstudio.lan", hosts)
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", [])
    assert not origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000", [])  # another port is another site
    assert not origin_allowed("null", "127.0.0.1:8000", [])  # sandboxed frames, file:// pages
    assert origin_allowed("https://studio.example", "127.0.0.1:8000", ["https://studio.example"])
    assert origin_allowed("http://anything", "127.0.0.1:8000", ["*"])


def test_requests_beyond_the_in_flight_limit_get_503() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = InFlightLimit(slow_app, limit=1)
    sent: list[list[dict[str, Any]]] = [[], []]

    async def call(i: int) -> None:
        async def send(message: dict[str, Any]) -> None:
            sent[i].append(message)

        await limited({"type": "http"}, None, send)

    async def scenario() -> None:
        first = asyncio.create_task(call(0))
        await asyncio.sleep(0.01)
        await call(1)  # answered at once: the first is still in flight
        release.set()
        await first

    asyncio.run(scenario())
    assert sent[1][0]["status"] == 503 and (b"retry-after", b"1") in sent[1][0]["headers"]
    assert sent[0][0]["status"] == 200 and limited.in_flight == 0


@pytest.mark.parametrize("path", ["/api/music/render", "/api/music/events", "/api/text", "/api/strokes"])
@pytest.mark.parametrize("body", [b"{bad", b"[" * 30_000 + b"]" * 30_000,
                                  b'{"seed": ' + b"[" * 5000 + b"]" * 5000 + b"}"])
def test_a_body_that_is_not_json_is_400_whatever_it_is(client: TestClient, path: str, body: bytes) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Traceback" not in r.text, r.text
