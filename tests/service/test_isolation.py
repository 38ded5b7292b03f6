"""One request cannot hurt the others (issue 12), on a real uvicorn server on loopback configured as
``perfrnn serve`` configures it: a huge primer upload while a listener streams, idle connections and idle
WebSockets, foreign Host and Origin headers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from service.settings import Settings


def ws_url(addr: str) -> str:
    return f"ws://{addr}/api/live"


def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    out = []
    while True:
        out.append(recv(ws))
        if out[-1]["type"] == kind:
            return out


def test_a_huge_primer_upload_leaves_a_live_listener_on_time_and_health_quick(
        serve: Callable[[Settings], str], settings: Settings, dense_midi: Callable[..., bytes],
        wide_checkpoints_dir: Path) -> None:
    addr = serve(settings.model_copy(update={"max_upload_bytes": 1 << 20, "checkpoints_dir": wide_checkpoints_dir}))
    data = dense_midi(120_000)  # about 1 MB: 120k notes in 20 s (all inside the 30 s a primer keeps)
    assert 900_000 < len(data) <= 1 << 20
    lateness: list[float] = []
    uploading, done = threading.Event(), threading.Event()

    def listen(seed: int) -> None:
        with connect(ws_url(addr), open_timeout=10) as ws:  # a hot temperature: many notes to time
            ws.send(json.dumps({"type": "start", "seed": seed, "temperature": 2.0}))
            until(ws, "started")
            t0 = time.monotonic()
            while not done.is_set():
                msg = recv(ws)
                if msg["type"] == "note" and uploading.is_set():
                    lateness.append(time.monotonic() - t0 - msg["at"])  # > 0: it came after it was due
            ws.send(json.dumps({"type": "stop"}))
            until(ws, "end")

    listeners = [threading.Thread(target=listen, args=(seed,)) for seed in range(3)]  # every live slot
    for listener in listeners:
        listener.start()
    health_s: list[float] = []
    try:
        time.sleep(0.5)
        uploading.set()
        with httpx.Client(base_url=f"http://{addr}", timeout=30) as http:
            result: dict[str, Any] = {}

            def upload() -> None:
                t0 = time.monotonic()
                r = http.post("/api/music/render/upload", data={"seconds": "2", "seed": "1"},
                              files={"primer": ("huge.mid", data, "audio/midi")})
                result.update(status=r.status_code, text=r.text[:200], seconds=time.monotonic() - t0)

            uploader = threading.Thread(target=upload)
            uploader.start()
            while uploader.is_alive():
                t0 = time.monotonic()
                assert http.get("/api/health").status_code == 200
                health_s.append(time.monotonic() - t0)
                time.sleep(0.05)
            uploader.join()
        time.sleep(0.3)
    finally:
        done.set()
        for listener in listeners:
            listener.join(timeout=20)
    assert result["status"] == 200, result
    assert result["seconds"] < 15.0
    assert health_s and max(health_s) < 1.0, health_s
    assert len(lateness) > 5 and max(lateness) <= 0.5, max(lateness, default=None)


def test_idle_connections_and_idle_websockets_leave_the_api_and_a_new_listener_working(
        serve: Callable[[Settings], str], settings: Settings) -> None:
    addr = serve(settings)  # 3 live slots, 256 requests in flight
    host, port = addr.split(":")
    with contextlib.ExitStack() as held:
        for _ in range(300):
            held.enter_context(socket.create_connection((host, int(port)), timeout=5))
        for _ in range(20):  # they never send their start message
            held.enter_context(connect(ws_url(addr), open_timeout=10))
        t0 = time.monotonic()
        r = httpx.get(f"http://{addr}/api/health", timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 1.0, r.text
        with connect(ws_url(addr), open_timeout=10) as ws:
            ws.send(json.dumps({"type": "start", "seed": 2}))
            assert until(ws, "note")[0]["type"] == "started"
            ws.send(json.dumps({"type": "stop"}))
            until(ws, "end")


def test_a_silent_connection_is_closed_after_the_idle_timeout(serve: Callable[[Settings], str],
                                                              settings: Settings) -> None:
    addr = serve(settings.model_copy(update={"idle_timeout_s": 1.0}))
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=8) as s:
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - t0 < 5.0


def test_a_websocket_that_never_starts_is_told_why_and_closed(serve: Callable[[Settings], str],
                                                               settings: Settings) -> None:
    addr = serve(settings.model_copy(update={"live_start_timeout_s": 0.5}))
    with connect(ws_url(addr), open_timeout=10) as ws:
        err = recv(ws)
        assert err["type"] == "error" and err["status"] == 408
        with pytest.raises(ConnectionClosed):
            recv(ws)
        assert ws.close_code == 1008


FOREIGN = "http://evil.example"


def handshake_status(addr: str, host: str) -> int:
    """The status a WebSocket handshake to /api/live with this Host header gets."""
    h, port = addr.split(":")
    with socket.create_connection((h, int(port)), timeout=10) as s:
        s.sendall(f"GET /api/live HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        return int(s.recv(1024).split(b" ", 2)[1])


def test_foreign_origin_or_host_gets_403_over_http_and_websocket(
        serve: Callable[[Settings], str], settings: Settings, dense_midi: Callable[..., bytes]) -> None:
    addr = serve(settings.model_copy(update={"allowed_origins": ["https://studio.example"]}))
    primer = dense_midi(10)
    with httpx.Client(base_url=f"http://{addr}", timeout=10) as http:
        rt_before = http.get("/api/health").json()["engine_streams"]
        # a cross-site multipart upload needs no preflight: it must be refused before any work
        r = http.post("/api/music/render/upload", data={"seconds": "2"}, headers={"Origin": FOREIGN},
                      files={"primer": ("p.mid", primer, "audio/midi")})
        assert r.status_code == 403 and "other sites" in r.json()["detail"]
        for path in ("/api/health", "/api/models"):
            assert http.get(path, headers={"Origin": FOREIGN}).status_code == 403
            assert http.get(path, headers={"Host": "rebound.evil.example"}).status_code == 403  # DNS rebinding
        assert http.post("/api/sessions", json={}, headers={"Host": f"evil.example:{addr.split(':')[1]}"}
                         ).status_code == 403
        # the page's own origin, a listed one, and clients that send none are served
        assert http.get("/api/health", headers={"Origin": f"http://{addr}"}).status_code == 200
        assert http.get("/api/health", headers={"Origin": "https://studio.example"}).status_code == 200
        assert http.get("/api/health", headers={"Host": f"localhost:{addr.split(':')[1]}"}).status_code == 200
        assert http.get("/api/health").json()["engine_streams"] == rt_before
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(addr), open_timeout=10, origin=FOREIGN)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    assert handshake_status(addr, "evil.example") == 403  # (the client library will not send a foreign Host)
    assert handshake_status(addr, addr) == 101
    with connect(ws_url(addr), open_timeout=10, origin=f"http://{addr}") as ws:  # type: ignore[arg-type]
        ws.send(json.dumps({"type": "start"}))
        until(ws, "started")


def test_a_client_that_leaves_stops_its_render(serve: Callable[[Settings], str], settings: Settings,
                                               wide_checkpoints_dir: Path) -> None:
    addr = serve(settings.model_copy(update={"checkpoints_dir": wide_checkpoints_dir, "max_render_seconds": 600,
                                             "render_timeout_s": 120}))
    host, port = addr.split(":")
    body = json.dumps({"seconds": 600, "seed": 1}).encode()  # minutes of work for the wide model
    with httpx.Client(base_url=f"http://{addr}", timeout=10) as http:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /api/music/render HTTP/1.1\r\nHost: " + addr.encode() + b"\r\nContent-Type: "
                      b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            deadline = time.monotonic() + 10
            while http.get("/api/health").json()["engine_streams"] == 0:
                assert time.monotonic() < deadline, "the render never started"
                time.sleep(0.02)
        left = time.monotonic()  # the client hung up mid-render
        while http.get("/api/health").json()["engine_streams"] != 0:
            assert time.monotonic() - left < 2.0, "the render went on after its client left"
            time.sleep(0.02)
