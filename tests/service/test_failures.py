"""What a client sees when something fails: a message nested too deeply for the parser, a stream the engine
cannot generate, an engine worker that died, a WebSocket client that never reads its replies."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from performance_rnn.engine import Engine
from performance_rnn.tasks.music.generate import stream_spec
from service.routes.websocket import MAX_OUTBOX, LiveSocket, parse_message
from service.settings import Settings

DEEP = "[" * 30_000 + "]" * 30_000  # 60 kB: under the 64 KiB frame limit, far past the parser's recursion


def read_until(ws: Any, kind: str, limit: int = 100_000) -> list[dict[str, Any]]:
    out = []
    for _ in range(limit):
        out.append(ws.receive_json())
        if out[-1]["type"] == kind:
            return out
    raise AssertionError(f"no {kind!r} message")


def sounding_after(messages: list[dict[str, Any]]) -> set[int]:
    sounding: set[int] = set()
    for m in messages:
        if m["type"] == "note":
            (sounding.add if m["on"] else sounding.discard)(m["pitch"])
    return sounding


def test_a_deeply_nested_message_gets_a_clear_error_and_the_stream_ends_cleanly(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "seed": 3})
        seen = read_until(ws, "started")
        seen += [ws.receive_json() for _ in range(5)]
        ws.send_text(DEEP)
        ws.send_text('{"type": "control", "temperature": ' + DEEP + "}")
        errors = []
        while len(errors) < 2:
            seen.append(ws.receive_json())
            if seen[-1]["type"] == "error":
                errors.append(seen[-1])
        assert [e["status"] for e in errors] == [400, 400] and "nested" in errors[0]["detail"]
        ws.send_json({"type": "stop"})  # the stream went on, and stops with a note-off for every sounding note
        seen += read_until(ws, "end")
        assert seen[-1]["reason"] == "stopped" and not sounding_after(seen)
    with client.websocket_connect("/api/live") as ws:  # as the start message: refused, with the reason
        ws.send_text(DEEP)
        err = ws.receive_json()
        assert err["status"] == 400 and "nested" in err["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_message_parsing_bounds_nesting_but_not_strings() -> None:
    assert parse_message('{"type": "control", "key": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')["key"].startswith("[")
    assert parse_message('{"a": "\\"[[["}') == {"a": '"[[['}
    assert type(parse_message("[" * 33 + "]" * 33)).__name__ == "Unreadable"
    assert type(parse_message("not json")).__name__ == "Unreadable"


class FailingForward:
    """Wraps an engine's step model: priming (``forward``) raises MemoryError."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def forward(self, *a: Any, **k: Any) -> Any:
        raise MemoryError("cannot allocate the primer's activations")

    def step(self, *a: Any, **k: Any) -> Any:
        return self.inner.step(*a, **k)


def test_a_stream_the_engine_cannot_generate_is_a_503_with_the_reason_and_others_go_on(client: TestClient) -> None:
    engine: Engine = client.app.state.runtime.engine
    inner = engine.model
    engine.model = FailingForward(inner)  # type: ignore[assignment]
    try:
        r = client.post("/api/music/render", json={"seconds": 1})
        assert r.status_code == 503 and "MemoryError" in r.json()["detail"], r.text
        with client.websocket_connect("/api/live") as ws:
            ws.send_json({"type": "start"})
            err = ws.receive_json()
            assert err["type"] == "error" and err["status"] == 503 and "priming failed" in err["detail"]
    finally:
        engine.model = inner
    assert client.post("/api/music/render", json={"seconds": 1}).status_code == 200
    assert client.get("/api/health").json()["status"] == "ok"


class Killer(BaseException):
    """Escapes every handler inside the worker: the worker thread dies."""


def test_health_is_degraded_while_an_engine_worker_is_down_and_the_next_stream_revives_it(
        client: TestClient) -> None:
    engine: Engine = client.app.state.runtime.engine
    inner = engine.model

    class Dies:
        def forward(self, *a: Any, **k: Any) -> Any:
            return inner.forward(*a, **k)

        def step(self, *a: Any, **k: Any) -> Any:
            raise Killer("the worker is gone")

    engine.model = Dies()  # type: ignore[assignment]
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start"})
        msgs: list[dict[str, Any]] = []
        try:  # the worker dies at the stream's first step, before its pre-roll ends: refused (1013) with the reason
            while not msgs or msgs[-1]["type"] != "end":
                msgs.append(ws.receive_json())
        except WebSocketDisconnect:
            pass
        assert any(m["type"] == "error" and m["status"] == 503 and "died" in m["detail"] for m in msgs)
        assert msgs[-1]["type"] in ("end", "error")
    engine.model = inner
    deadline = time.monotonic() + 5
    while engine.healthy and time.monotonic() < deadline:
        time.sleep(0.01)
    health = client.get("/api/health").json()
    assert health["status"] == "degraded" and health["engines"] == {"music": False}
    assert client.post("/api/music/render", json={"seconds": 1}).status_code == 200  # restarts the worker
    assert client.get("/api/health").json()["status"] == "ok"


class StuckSocket:
    """A WebSocket whose client never reads: every send waits forever; it sends ``incoming`` messages."""

    def __init__(self, incoming: int) -> None:
        self.incoming = incoming
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        if self.received >= self.incoming:
            await asyncio.sleep(3600)
        self.received += 1
        return {"type": "websocket.receive", "text": '{"type": "control", "temperature": 0.5}'}

    async def send_json(self, msg: Any) -> None:
        await asyncio.sleep(3600)

    async def close(self, code: int = 1000) -> None:
        pass


def test_a_client_that_never_reads_is_bounded_and_then_dropped(client: TestClient, settings: Settings) -> None:
    rt = client.app.state.runtime
    rt.settings = settings.model_copy(update={"live_send_timeout_s": 0.5})
    stuck = StuckSocket(incoming=10_000)
    live = LiveSocket(stuck, rt)  # type: ignore[arg-type]
    stream = rt.engine.open(stream_spec(rt.models.music["music"], seed=0))

    async def scenario() -> None:
        reader = asyncio.create_task(live._read(stream))
        await asyncio.sleep(0.3)
        assert len(live.outbox) <= MAX_OUTBOX and stuck.received <= MAX_OUTBOX + 1  # it stopped reading
        await live._send({"type": "note"})  # times out: the client is treated as gone
        assert live.gone
        reader.cancel()

    try:
        asyncio.run(scenario())
    finally:
        stream.close()


def test_an_upload_that_takes_too_long_to_parse_is_a_422_and_the_server_goes_on(
        make_client: Any, settings: Settings, dense_midi: Any) -> None:
    client = make_client(settings.model_copy(update={"parse_timeout_s": 0.3, "max_upload_bytes": 1 << 20}))
    r = client.post("/api/music/render/upload", data={"seconds": "1"},
                    files={"primer": ("huge.mid", dense_midi(120_000), "audio/midi")})
    assert r.status_code == 422 and "not parsed within 0.3 s" in r.json()["detail"], r.text
    assert client.post("/api/music/render", json={"seconds": 1}).status_code == 200
    assert client.app.state.runtime.renders.used == 0
