"""Fixtures for the real-time MIDI tests: a fake clock and a port that records (``testing.midi``), fresh JACK
port names and receivers (``testing.jack``; the JACK server itself is the root conftest's ``jack_server``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import mido
import pytest

from testing.jack import JackReceiver, JackServer
from testing.midi import FakeClock, FakePort, unmatched_note_ons


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def port(clock: FakeClock) -> FakePort:
    return FakePort(clock.now)


@pytest.fixture
def jack_port_name(jack_server: JackServer) -> str:
    """A fresh port name, so tests never see each other's ports."""
    return f"perfrnn-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def jack_receiver() -> Iterator[Callable[[object], JackReceiver]]:
    made: list[JackReceiver] = []

    def connect(out: object) -> JackReceiver:
        """Listen to the open output ``out`` (an RtMidiOutput), once messages flow."""
        made.append(JackReceiver(out.name))  # type: ignore[attr-defined]
        made[-1].handshake(out)
        return made[-1]

    yield connect
    for receiver in made:
        receiver.close()


@pytest.fixture
def make_clock() -> type[FakeClock]:
    return FakeClock


@pytest.fixture
def make_port() -> type[FakePort]:
    return FakePort


@pytest.fixture
def unmatched() -> Callable[[list[mido.Message]], set[tuple[int, int]]]:
    return unmatched_note_ons
