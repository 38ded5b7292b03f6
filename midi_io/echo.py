"""A player's own notes passed through to an output (``perfrnn jam --passthrough``), on a channel of their own
so that the model's note-offs never cut them (nor theirs the model's), and released on stop: ``release()``
sends a note-off for every echoed note still sounding and lifts an echoed sustain pedal."""

from __future__ import annotations

import threading

import mido

from midi_io.files import SUSTAIN_CC, SUSTAIN_THRESHOLD
from midi_io.ports import OutputPort


class Echo:
    """An ``OutputPort`` that forwards to ``port`` on ``channel`` (0..15) and remembers what sounds."""

    def __init__(self, port: OutputPort, channel: int) -> None:
        if not 0 <= channel <= 15:
            raise ValueError(f"channel must be in range 0..15, got {channel}")
        self.port, self.channel = port, channel
        self._sounding: set[int] = set()
        self._pedal = False
        self._lock = threading.Lock()

    def send(self, msg: mido.Message) -> None:
        if hasattr(msg, "channel"):
            msg = msg.copy(channel=self.channel)
        with self._lock:
            if msg.type == "note_on" and msg.velocity > 0:
                self._sounding.add(msg.note)
            elif msg.type in ("note_on", "note_off"):
                self._sounding.discard(msg.note)
            elif msg.type == "control_change" and msg.control == SUSTAIN_CC:
                self._pedal = msg.value >= SUSTAIN_THRESHOLD
            self.port.send(msg)

    def release(self) -> None:
        """Silence everything echoed: note-offs for the sounding notes, then the pedal up. Idempotent."""
        with self._lock:
            for pitch in sorted(self._sounding):
                self.port.send(mido.Message("note_off", channel=self.channel, note=pitch, velocity=0))
            if self._pedal:
                self.port.send(mido.Message("control_change", channel=self.channel, control=SUSTAIN_CC, value=0))
            self._sounding.clear()
            self._pedal = False

    def close(self) -> None:
        self.release()  # the port itself belongs to whoever opened it
