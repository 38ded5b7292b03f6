"""Fakes for real-time MIDI logic: a clock whose ``sleep`` advances it, a port that records what it is sent; and
two helpers on MIDI data: a dense file (a huge or hostile upload) and the notes a message list left sounding."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import mido

from midi_io.errors import PortUnavailableError

SPIN_STEP_S = 1e-5  # how far FakeClock.sleep(0) (one spin iteration) advances time


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
