"""service/playback.py's Timeline: one path from a token to its due time, shared by the port playback and the
WebSocket route. Both are driven here with the same tokens on an injected clock (no engine, no JACK): the real
``Stream``, ``LivePlayback`` and ``LiveSocket``, a player and a socket that only record."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import mido
import pytest
import torch

from performance_rnn.codecs.performance import PerformanceCodecConfig, token_layout
from performance_rnn.engine import Stream, StreamSpec
from service.playback import START_MARGIN_S, LivePlayback, Timeline
from service.routes.websocket import LiveSocket
from service.schemas import LiveStart

CFG = PerformanceCodecConfig()
L = token_layout(CFG)
STARTED_AT = 100.0  # the stream's music time 0 on the engine clock
LAG = 0.2  # its first token is handled this long after that (many streams started at once)
# a velocity, C4 for 0.1 s, then D4 for 0.5 s, then E4 still sounding when the stream ends 0.3 s later
TOKENS = [L.velocity.start + 20, L.note_on.start + 60, L.time_shift.start + 9, L.note_off.start + 60,
          L.note_on.start + 62, L.time_shift.start + 49, L.note_off.start + 62, L.note_on.start + 64,
          L.time_shift.start + 29]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingPlayer:
    """What ``LivePlayback`` asks of a player: a start, its piece time on ``clock``, and scheduled messages."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.origin = clock, 0.0
        self.scheduled: list[tuple[float, mido.Message]] = []

    def start(self, origin_s: float) -> None:
        self.origin = origin_s

    def piece_time(self) -> float:
        return self.clock() - self.origin

    def schedule(self, time_s: float, msg: mido.Message, *, timeout_s: float | None = None) -> None:
        self.scheduled.append((time_s, msg))

    def stop(self) -> None:
        pass


class RecordingSocket:
    """A WebSocket client that reads everything and says nothing."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_json(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self, code: int = 1000) -> None:
        pass


def started_stream(tokens: list[int]) -> Stream:
    """A stream the engine has started, whose tokens (and its end) are queued."""
    stream = Stream(0, StreamSpec(primer=torch.tensor([L.time_shift.start]), lookahead_s=0.2))
    stream.started_at = STARTED_AT
    for t in [*tokens, None]:
        stream.emit(t)
    return stream


def port_events(tokens: list[int], clock: FakeClock) -> list[tuple[float, bool, int, int]]:
    player = RecordingPlayer(clock)
    LivePlayback(started_stream(tokens), player, CFG).start()  # type: ignore[arg-type]
    return [(round(t, 4), m.type == "note_on", m.note, m.velocity) for t, m in player.scheduled]


def websocket_events(tokens: list[int], clock: FakeClock) -> list[tuple[float, bool, int, int]]:
    ws = RecordingSocket()
    rt = SimpleNamespace(settings=SimpleNamespace(live_start_timeout_s=5.0, live_send_timeout_s=5.0))
    live = LiveSocket(ws, rt, clock=clock)  # type: ignore[arg-type]
    model = SimpleNamespace(codec=CFG, conditioned=False)
    live.music = SimpleNamespace(name="music", model=model)  # type: ignore[assignment]
    asyncio.run(live._play(started_stream(tokens), LiveStart.model_validate({"type": "start"})))
    assert ws.sent[-1] == {"type": "end", "reason": "finished"}
    return [(m["at"], m["on"], m["pitch"], m["velocity"]) for m in ws.sent if m["type"] == "note"]


def test_a_late_first_token_delays_the_websocket_stream_as_it_delays_the_port_stream() -> None:
    clock = FakeClock(STARTED_AT + LAG)  # every token is handled LAG after the music's time 0
    want_first = round(LAG + START_MARGIN_S, 4)  # due at its music time 0, plus the lag and the margin
    port, socket = port_events(TOKENS, clock), websocket_events(TOKENS, clock)
    assert port[0][:3] == (want_first, True, 60)
    assert socket[0][:3] == (want_first, True, 60)  # before the shared timeline: 0.0, already 0.2 s late


def test_the_port_and_websocket_paths_time_the_same_tokens_identically() -> None:
    for lag in (0.0, 0.05, LAG):
        clock = FakeClock(STARTED_AT + lag)
        port = port_events(TOKENS, clock)
        assert websocket_events(TOKENS, clock) == port
        offset = lag + START_MARGIN_S
        velocity = port[0][3]
        assert port == [(round(t + offset, 4), on, p, v) for t, on, p, v in [
            (0.0, True, 60, velocity), (0.1, False, 60, 0), (0.1, True, 62, velocity), (0.6, False, 62, 0),
            (0.6, True, 64, velocity), (0.9, False, 64, 0)]]  # E4 released when the music ends


def test_time_spent_paused_moves_every_later_event() -> None:
    clock = FakeClock(STARTED_AT)
    stream = started_stream([])
    timeline = Timeline(stream, CFG, clock=clock)
    (on,) = timeline.feed(L.note_on.start + 60)
    assert timeline.due(on) == START_MARGIN_S and timeline.first_note_at == STARTED_AT + START_MARGIN_S
    stream.started_at += 1.5  # the engine's account of a 1.5 s pause
    timeline.feed(L.time_shift.start + 9)
    (off,) = timeline.feed(L.note_off.start + 60)
    assert timeline.due(off) == 0.1 + 1.5 + START_MARGIN_S
    clock.now = STARTED_AT + 3.0
    assert timeline.now() == 3.0 and timeline.end_s() == timeline.due(off)


PAUSE = 0.377  # how long a jam stream listened, paused, before its answer was resumed


class ResumingPlayer(RecordingPlayer):
    """The engine applies a paused stream's resume just as the player starts: ``started_at`` moves on by the pause
    (the jam answer's race, seen as answers dropped on a busy machine)."""

    def __init__(self, clock: FakeClock, stream: Stream) -> None:
        super().__init__(clock)
        self.stream = stream

    def start(self, origin_s: float) -> None:
        super().start(origin_s)
        self.stream.started_at += PAUSE


def test_a_resume_during_start_moves_the_due_times_on_the_players_clock() -> None:
    clock = FakeClock(STARTED_AT + PAUSE)  # the answer's first token comes after the pause
    stream = started_stream(TOKENS)
    player = ResumingPlayer(clock, stream)
    LivePlayback(stream, player, CFG).start()  # type: ignore[arg-type]
    assert player.origin == STARTED_AT
    first_due, first = player.scheduled[0]
    assert first.type == "note_on" and first.note == 60
    # due after the pause on the player's clock (before the fix: START_MARGIN_S, 377 ms in the past: dropped)
    assert first_due == pytest.approx(PAUSE + START_MARGIN_S)
