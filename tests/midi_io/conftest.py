"""Fakes for the real-time MIDI tests (a port that records, a clock whose sleep advances it) and JACK fixtures."""

from __future__ import annotations

import importlib.util
import io
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import mido
import pytest

from midi_io.errors import PortUnavailableError

SPIN_STEP_S = 1e-5  # how far FakeClock.sleep(0) (one spin iteration) advances time


def _load_jack_helper() -> ModuleType:
    # by path: an installed package (Hershey-Fonts) owns the top-level name "tests"
    spec = importlib.util.spec_from_file_location("perfrnn_tests_jack", Path(__file__).parents[1] / "jack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


jack = _load_jack_helper()


class FakeClock:
    """``now()`` is fake time; ``sleep(d)`` advances it by d (``sleep(0)`` by SPIN_STEP_S) at once.

    ``stalls`` maps a time to extra seconds added when sleeping past it (the process was descheduled).
    Past ``freeze_at`` time stands still and ``sleep`` yields for real, so a test can act mid-play.
    """

    def __init__(
        self, start: float = 100.0, *, freeze_at: float | None = None, stalls: dict[float, float] | None = None
    ):
        self.t = start
        self.freeze_at = freeze_at
        self.stalls = dict(stalls or {})
        self.frozen = threading.Event()
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            if self.freeze_at is not None and self.t >= self.freeze_at:
                self.frozen.set()
            else:
                new_t = self.t + max(seconds, SPIN_STEP_S)
                for at in [at for at in self.stalls if self.t < at <= new_t]:
                    new_t += self.stalls.pop(at)
                self.t = new_t if self.freeze_at is None else min(new_t, self.freeze_at)
                return
        time.sleep(0.0005)

    def thaw(self) -> None:
        with self._lock:
            self.freeze_at = None
            self.frozen.clear()


class FakePort:
    """Records (clock time, message) for every send; raises PortUnavailableError on send number ``fail_on``."""

    def __init__(self, now: Callable[[], float] = time.monotonic, fail_on: int | None = None) -> None:
        self.now = now
        self.fail_on = fail_on
        self.sent: list[tuple[float, mido.Message]] = []
        self.closed = False
        self._calls = 0

    def send(self, msg: mido.Message) -> None:
        self._calls += 1
        if self._calls == self.fail_on:
            raise PortUnavailableError("fake port vanished")
        self.sent.append((self.now(), msg))

    def close(self) -> None:
        self.closed = True

    @property
    def messages(self) -> list[mido.Message]:
        return [m for _, m in self.sent]


def dense_midi(n_notes: int, *, seconds: float = 20.0, pedal: bool = False) -> bytes:
    """A type-1 file with ``n_notes`` short notes spread over ``seconds`` (running status keeps it compact:
    about 8 bytes a note, so 125k notes make a 1 MB file), the sustain pedal flipping after every note if
    ``pedal``: the shape of a hostile or merely huge upload."""
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks a second
    track = mido.MidiTrack()
    mid.tracks.append(track)
    step = max(1, int(seconds * 960 / n_notes))
    for i in range(n_notes):
        pitch = 36 + (i * 7) % 60
        track.append(mido.Message("note_on", note=pitch, velocity=40 + i % 80, time=step))
        if pedal:
            track.append(mido.Message("control_change", control=64, value=127 * (i % 2), time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=1))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def unmatched_note_ons(messages: list[mido.Message]) -> set[tuple[int, int]]:
    """(channel, pitch) of note-ons never followed by a note-off."""
    sounding: set[tuple[int, int]] = set()
    for msg in messages:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            sounding.discard((msg.channel, msg.note))
    return sounding


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def port(clock: FakeClock) -> FakePort:
    return FakePort(clock.now)


@pytest.fixture(scope="session")
def jack_server() -> Iterator[Any]:
    try:
        server = jack.start_jack()
    except jack.JackUnavailable as exc:
        pytest.skip(f"no JACK server: {exc}")
    yield server
    server.stop()


class JackReceiver:
    """A second rtmidi JACK client listening to one port. It has no Python callback: rtmidi queues messages
    on JACK's thread without the GIL (a callback waiting for the GIL makes JACK drop events), and the test
    polls. ``received`` holds (time_s, message); time_s is JACK's clock since the first message, in seconds.
    """

    def __init__(self, source: str) -> None:
        import rtmidi

        self.received: list[tuple[float, mido.Message]] = []
        self._clock_s = 0.0
        self._in = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=f"rx-{uuid.uuid4().hex[:6]}", queue_size_limit=4096)
        ports = self._in.get_ports()
        index = next(i for i, name in enumerate(ports) if name.endswith(":" + source))
        self._in.open_port(index, "in")

    def poll(self) -> int:
        """Move queued messages into ``received``; returns how many there are."""
        while (event := self._in.get_message()) is not None:
            data, delta_s = event
            self._clock_s += delta_s
            self.received.append((self._clock_s, mido.Message.from_bytes(data)))
        return len(self.received)

    def handshake(self, out: Any, timeout_s: float = 5.0) -> None:
        """Probe through ``out`` until messages arrive (a JACK connection takes a cycle or more), then forget them."""
        probe = mido.Message("control_change", control=119, value=0)
        deadline = time.monotonic() + timeout_s
        while not self.poll():
            assert time.monotonic() < deadline, "the JACK connection never carried a message"
            out.send(probe)
            time.sleep(0.01)
        time.sleep(0.05)
        self.poll()
        self.received.clear()

    def messages(self) -> list[mido.Message]:
        self.poll()
        return [m for _, m in self.received]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.poll() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        self._in.close_port()
        self._in.delete()


@pytest.fixture
def jack_port_name(jack_server: Any) -> str:
    """A fresh port name, so tests never see each other's ports."""
    return f"perfrnn-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def jack_receiver() -> Iterator[Callable[[Any], JackReceiver]]:
    made: list[JackReceiver] = []

    def connect(out: Any) -> JackReceiver:
        """Listen to the open output ``out`` (an RtMidiOutput), once messages flow."""
        made.append(JackReceiver(out.name))
        made[-1].handshake(out)
        return made[-1]

    yield connect
    for receiver in made:
        receiver.close()


@pytest.fixture
def make_clock() -> type[FakeClock]:
    return FakeClock


@pytest.fixture(name="dense_midi")
def dense_midi_fixture() -> Callable[..., bytes]:
    return dense_midi


@pytest.fixture
def make_port() -> type[FakePort]:
    return FakePort


@pytest.fixture
def unmatched() -> Callable[[list[mido.Message]], set[tuple[int, int]]]:
    return unmatched_note_ons
