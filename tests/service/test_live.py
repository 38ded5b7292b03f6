"""routes/live.py: the WebSocket stream at musical pace, controls mid-stream, clean ends, freed streams."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect


def read_until(ws: Any, kind: str, limit: int = 100_000) -> list[dict[str, Any]]:
    """Messages up to and including the first of type ``kind``."""
    out = []
    for _ in range(limit):
        msg = ws.receive_json()
        out.append(msg)
        if msg["type"] == kind:
            return out
    raise AssertionError(f"no {kind!r} message")


def balanced(messages: list[dict[str, Any]]) -> bool:
    """Every note-on has its note-off."""
    sounding: set[int] = set()
    for m in messages:
        if m["type"] == "note":
            (sounding.add if m["on"] else sounding.discard)(m["pitch"])
    return not sounding


def wait_idle(client: TestClient, timeout_s: float = 3.0) -> bool:
    rt = client.app.state.runtime
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if rt.engine.active == 0 and rt.live.used == 0:
            return True
        time.sleep(0.01)
    return False


def test_notes_arrive_at_musical_pace_and_the_stream_ends_cleanly(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "seed": 1, "max_seconds": 2.0})
        started = ws.receive_json()
        t0 = time.monotonic()
        assert started["type"] == "started" and started["lookahead_s"] == 0.2
        messages, arrivals = [], []
        while True:
            msg = ws.receive_json()
            messages.append(msg)
            arrivals.append(time.monotonic() - t0)
            if msg["type"] == "end":
                break
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1000
    assert messages[-1] == {"type": "end", "reason": "finished"}
    notes = [(m, a) for m, a in zip(messages, arrivals, strict=True) if m["type"] == "note"]
    assert notes and balanced(messages)
    early = [m["at"] - a for m, a in notes if m["on"]]
    assert max(early) < 0.2 + 0.15  # paced: never sent much more than the lookahead before its due time
    ats = [m["at"] for m, _ in notes]
    assert ats == sorted(ats) and all(m["t"] <= 2.0 + 1e-6 for m, _ in notes[:-1] if m["on"])
    assert wait_idle(client)


def test_a_control_message_changes_the_stream(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as plain, client.websocket_connect("/api/live") as changed:
        for ws in (plain, changed):
            ws.send_json({"type": "start", "seed": 5, "temperature": 1.0})
            read_until(ws, "started")
        # top_k 1 (greedy) surely departs from sampling, even for the near-uniform test model
        changed.send_json({"type": "control", "temperature": 1.5, "top_k": 1, "density": 8, "key": "C"})
        time.sleep(2.5)
        for ws in (plain, changed):
            ws.send_json({"type": "stop"})
        got = [read_until(ws, "end") for ws in (plain, changed)]
    ack = [m for m in got[1] if m["type"] == "control"]
    assert ack == [{"type": "control", "temperature": 1.5, "top_k": 1, "top_p": None, "density": 8, "key": "C"}]
    notes = [[(m["t"], m["pitch"], m["on"]) for m in msgs if m["type"] == "note"] for msgs in got]
    assert notes[0] != notes[1]  # the same seed diverges once the control reaches the engine
    assert wait_idle(client)


def test_pause_resume_stop(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "seed": 2})
        read_until(ws, "started")
        before = read_until(ws, "note")
        ws.send_json({"type": "pause"})
        upto_pause = before + read_until(ws, "paused")
        assert balanced(upto_pause)  # pausing releases the sounding notes
        time.sleep(0.5)
        ws.send_json({"type": "resume"})
        after = read_until(ws, "resumed")
        assert not [m for m in after if m["type"] == "note"]  # nothing was sent while paused
        ws.send_json({"type": "stop"})
        rest = read_until(ws, "end")
        assert rest[-1]["reason"] == "stopped"
        assert balanced(upto_pause + after + rest)
    assert wait_idle(client)


def test_a_client_that_disconnects_mid_stream_frees_its_stream(client: TestClient) -> None:
    rt = client.app.state.runtime
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "seed": 3})
        read_until(ws, "note")
        assert rt.engine.active == 1 and rt.live.used == 1
    assert wait_idle(client)


def test_bad_messages(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as ws:
        ws.send_json({"type": "start", "temperature": -1})
        err = ws.receive_json()
        assert err["type"] == "error" and err["status"] == 422 and "temperature" in err["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    with client.websocket_connect("/api/live") as ws:
        ws.send_text("not json")  # 400, as an HTTP body that is not JSON
        assert ws.receive_json()["status"] == 400
    with client.websocket_connect("/api/live") as ws:  # mid-stream mistakes are reported; the stream goes on
        ws.send_json({"type": "start"})
        read_until(ws, "started")
        ws.send_bytes(b"\xff\xfe")
        ws.send_json({"type": "control", "key": "H"})
        ws.send_json({"type": "dance"})
        errors = [m for m in read_until(ws, "error") + read_until(ws, "error") + read_until(ws, "error")
                  if m["type"] == "error"]
        assert [e["status"] for e in errors] == [400, 422, 422]
        assert "unknown key" in errors[1]["detail"] and "dance" in errors[2]["detail"]
        ws.send_json({"type": "stop"})
        read_until(ws, "end")
    assert wait_idle(client)


def test_streams_over_the_limit_are_refused_with_1013(client: TestClient) -> None:
    rt = client.app.state.runtime
    for _ in range(rt.live.limit):
        rt.live.acquire()
    try:
        with client.websocket_connect("/api/live") as ws:
            ws.send_json({"type": "start"})  # the slot is asked for by a valid start, not by connecting
            err = ws.receive_json()
            assert err["status"] == 429
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1013
    finally:
        for _ in range(rt.live.limit):
            rt.live.release()


def test_concurrent_streams_with_the_same_seed_play_the_same_music(client: TestClient) -> None:
    with client.websocket_connect("/api/live") as a, client.websocket_connect("/api/live") as b:
        for ws in (a, b):
            ws.send_json({"type": "start", "seed": 7})
            read_until(ws, "started")
        time.sleep(1.0)
        got = []
        for ws in (a, b):
            ws.send_json({"type": "stop"})
            got.append([(m["pitch"], m["on"]) for m in read_until(ws, "end") if m["type"] == "note"][:10])
        assert got[0] == got[1]
    assert wait_idle(client)


def test_without_a_music_model_the_socket_says_why(make_client, tmp_path) -> None:
    from service.settings import Settings

    c = make_client(Settings(checkpoints_dir=tmp_path))
    with c.websocket_connect("/api/live") as ws:
        err = ws.receive_json()
        assert err["status"] == 503 and "music.pt" in err["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1013
