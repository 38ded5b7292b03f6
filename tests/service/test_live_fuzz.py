"""Property-based: Hypothesis drives the WebSocket protocol (/api/live) with sequences of valid, invalid and
malformed messages (wrong types, NaN, unknown fields, random JSON, text that is not JSON, binary frames, deep
nesting), as test_openapi_fuzz.py does for the HTTP API. Whatever is sent: every reply is a protocol message,
no error is a 5xx other than the documented 503, no reply carries a traceback, the socket never closes as a
server failure (1011) or without a close (1006), and a stream ends with ``end`` and no note left sounding.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from service.schemas import LiveNote

MAX_EXAMPLES = 30  # per test: about ten seconds in all on 2 cores
KINDS = {"started", "note", "control", "paused", "resumed", "error", "end"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
numbers = st.none() | st.integers(-10, 2000) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4)
keys = st.none() | st.sampled_from(["C", "Am", "D minor", "Bb", "H", "", "C" * 20]) | st.text(max_size=8)
controls = {"temperature": numbers, "top_k": numbers, "top_p": numbers, "density": numbers, "key": keys}
start = st.fixed_dictionaries({"type": st.just("start")}, optional={
    **controls, "seed": numbers, "max_seconds": st.none() | st.floats(0.01, 3.0) | st.integers(-1, 0),
    "primer_pitches": st.lists(st.integers(-2, 130), max_size=5) | json_values,
    "model": st.none() | st.sampled_from(["music", "nope", ""]), "extra": json_values})
control = st.fixed_dictionaries({"type": st.just("control")}, optional={**controls, "extra": json_values})
command = st.fixed_dictionaries({"type": st.sampled_from(["pause", "resume", "stop", "dance", "", "START"])},
                                optional={"extra": json_values})


valid_start = st.fixed_dictionaries({"type": st.just("start")}, optional={
    "seed": st.integers(0, 1000), "temperature": st.floats(0.1, 2.0), "top_k": st.none() | st.integers(1, 50),
    "density": st.none() | st.floats(1.0, 64.0), "key": st.none() | st.sampled_from(["C", "Am", "D minor", "F#"]),
    "primer_pitches": st.lists(st.integers(0, 127), max_size=4), "max_seconds": st.none() | st.floats(0.2, 2.0)})


class Wait(float):
    """A pause between two frames (seconds), so that notes flow while messages arrive."""


def text_of(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


deep = st.integers(1, 30_000).map(lambda n: "[" * n + "]" * n)
valid_control = st.fixed_dictionaries({"type": st.just("control")}, optional={
    "temperature": st.floats(0.1, 2.0), "top_p": st.none() | st.floats(0.5, 1.0),
    "density": st.none() | st.floats(1.0, 64.0), "key": st.none() | st.sampled_from(["C", "Am", "D minor"])})
valid_command = st.fixed_dictionaries({"type": st.sampled_from(["pause", "resume"])})
frames = st.one_of(
    (valid_control | valid_command).map(text_of),
    (start | control | command | json_values).map(text_of),
    st.text(max_size=40),  # mostly not JSON
    deep,
    st.binary(max_size=40),
)


def send(ws: Any, frame: str | bytes | Wait) -> None:
    if isinstance(frame, Wait):
        time.sleep(frame)
    elif isinstance(frame, bytes):
        ws.send_bytes(frame)
    else:
        ws.send_text(frame)


def check_reply(msg: Any) -> None:
    assert isinstance(msg, dict) and msg.get("type") in KINDS, msg
    if msg["type"] == "error":
        assert msg["status"] < 500 or msg["status"] == 503, msg
        assert "Traceback" not in json.dumps(msg)
    if msg["type"] == "note":
        LiveNote.model_validate(msg)


def run_session(client: TestClient, frames: list[str | bytes | Wait]) -> tuple[list[dict[str, Any]], int | None]:
    """Send the frames, then resume and stop; -> every reply up to ``end`` or the close, and the close code."""
    replies: list[dict[str, Any]] = []
    code = None
    with client.websocket_connect("/api/live") as ws:
        for frame in frames:
            send(ws, frame)
        ws.send_text('{"type": "resume"}')
        ws.send_text('{"type": "stop"}')
        try:
            while True:
                replies.append(ws.receive_json())
                check_reply(replies[-1])
                if replies[-1]["type"] == "end":
                    break
        except WebSocketDisconnect as closed:
            code = closed.code
    assert code in (None, 1000, 1008, 1013), (code, replies[-3:])
    return replies, code


def assert_clean_end(replies: list[dict[str, Any]]) -> None:
    assert replies[-1]["type"] == "end", replies[-3:]
    sounding: set[int] = set()
    for m in replies:
        if m["type"] == "note":
            (sounding.add if m["on"] else sounding.discard)(m["pitch"])
    assert not sounding, sounding


FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


def test_no_message_sequence_breaks_a_playing_stream(client: TestClient) -> None:
    seen: list[str] = []

    @given(opening=valid_start, rest=st.lists(frames | st.floats(0.0, 0.15).map(Wait), max_size=8))
    @FUZZ
    def check(opening: dict[str, Any], rest: list[str | bytes | Wait]) -> None:
        replies, _ = run_session(client, [text_of({**opening, "temperature": 2.0}), Wait(0.2), *rest])
        assert replies[0]["type"] == "started", replies[:3]
        assert_clean_end(replies)
        seen.extend(m["type"] for m in replies)

    check()
    assert client.app.state.runtime.live.used == 0
    assert {"note", "error", "control", "paused"} <= set(seen)  # the fuzz reached what it is meant to test


def test_no_opening_message_breaks_the_protocol(client: TestClient) -> None:
    @given(first=start.map(text_of) | frames, rest=st.lists(frames, max_size=3))
    @FUZZ
    def check(first: str | bytes, rest: list[str | bytes]) -> None:
        replies, code = run_session(client, [first, *rest])
        if any(m["type"] == "started" for m in replies):
            assert_clean_end(replies)
        else:  # refused: an error says why, then the close
            assert replies and replies[0]["type"] == "error" and code in (1008, 1013), (code, replies)

    check()
    assert client.app.state.runtime.live.used == 0
