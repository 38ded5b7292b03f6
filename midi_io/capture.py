"""Capture a played phrase from MIDI input, and map a controller's knobs (MIDI CC) to generation controls.

Wire it to a keyboard with ``open_input(name, capture.feed)``; call ``capture.poll()`` from your loop to get
each finished phrase; read control changes from ``capture.controls`` (a thread-safe queue) or ``on_control``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import mido

from midi_io.errors import MidiIOError
from midi_io.files import SUSTAIN_CC, SUSTAIN_THRESHOLD, apply_sustain_pedal
from midi_io.notes import Note
from midi_io.ports import OutputPort

logger = logging.getLogger(__name__)

TEMPERATURE_RANGE = (0.1, 2.0)  # CC 0 -> 0.1, CC 127 -> 2.0, linear (Magenta's midi interface)
RESPONSE_STEP_S = 0.25  # response length in seconds per CC step; 0 means "as long as the phrase"
BUTTON_THRESHOLD = 64  # CC value >= 64 is "pressed" / "on"


class Control(StrEnum):
    """What a mapped CC controls, and the value ``ControlChange.value`` carries for it."""

    TEMPERATURE = "temperature"  # 0.1..2.0, linear in the CC value
    DENSITY = "density"  # 0.0..1.0 (CC / 127); the caller maps it onto its note-density bins
    KEY = "key"  # pitch class 0..11 (C=0, C#=1 .. B=11), CC * 12 // 128
    RESPONSE_LENGTH = "response_length"  # seconds, CC * 0.25 (0.0 = as long as the played phrase)
    CONDITIONING = "conditioning"  # 1.0 on (CC >= 64) or 0.0 off: density/key conditioning
    PANIC = "panic"  # 1.0, sent once per press (CC >= 64): silence everything
    END_PHRASE = "end_phrase"  # 1.0, sent once per press: end the phrase now (the capture acts on it too)


_BUTTONS = (Control.PANIC, Control.END_PHRASE)
DEFAULT_CC_MAP = "21=temperature,22=density,23=key,24=response_length,25=conditioning,26=panic,27=end_phrase"


@dataclass(frozen=True)
class ControlChange:
    control: Control
    value: float  # in the control's unit (see Control)
    cc: int  # controller number 0..127
    raw: int  # CC value 0..127
    time_s: float  # clock time it arrived


def control_value(control: Control, raw: int) -> float:
    """Map a CC value 0..127 to ``control``'s unit (see ``Control``)."""
    if not 0 <= raw <= 127:
        raise ValueError(f"CC value must be in range 0..127, got {raw}")
    if control is Control.TEMPERATURE:
        low, high = TEMPERATURE_RANGE
        return low + (high - low) * raw / 127
    if control is Control.DENSITY:
        return raw / 127
    if control is Control.KEY:
        return float(raw * 12 // 128)
    if control is Control.RESPONSE_LENGTH:
        return raw * RESPONSE_STEP_S
    return 1.0 if raw >= BUTTON_THRESHOLD else 0.0


def _parse_pairs(text: str) -> tuple[tuple[int, Control], ...]:
    pairs: dict[int, Control] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        number, _, name = item.partition("=")
        try:
            cc = int(number)
            control = Control(name.strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in Control)
            raise ValueError(f"CC map items look like '21=temperature' (controls: {allowed}), got {item!r}") from None
        if not 0 <= cc <= 127:
            raise ValueError(f"CC number must be in range 0..127, got {item!r}")
        if cc in pairs:
            raise ValueError(f"CC {cc} is mapped twice")
        pairs[cc] = control
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class CCMap:
    """CC number -> control. The default, for the first knobs of most controllers, is
    21=temperature, 22=density, 23=key, 24=response_length, 25=conditioning, 26=panic, 27=end_phrase.
    A mapped CC is a control only: mapping 64 turns the sustain pedal into that control.
    """

    pairs: tuple[tuple[int, Control], ...] = field(default_factory=lambda: _parse_pairs(DEFAULT_CC_MAP))

    @classmethod
    def parse(cls, text: str) -> CCMap:
        """Read "21=temperature,22=density,..." (an empty string maps nothing). Raises ValueError."""
        return cls(_parse_pairs(text))

    def control_for(self, cc: int) -> Control | None:
        return next((control for number, control in self.pairs if number == cc), None)

    def __str__(self) -> str:
        return ",".join(f"{cc}={control.value}" for cc, control in self.pairs)


@dataclass(frozen=True)
class CaptureConfig:
    silence_s: float = 1.0  # a phrase ends this long after its last note-off, with no key held
    max_phrase_s: float = 30.0  # a phrase is ended (held notes cut) this long after its first note
    min_notes: int = 1  # a phrase with fewer notes is discarded
    channel: int | None = None  # 0..15: listen to this channel only; None listens to all
    apply_sustain: bool = True  # the sustain pedal (CC 64) lengthens captured notes, as when reading files
    max_controls: int = 256  # bound of the control queue; the oldest change is dropped when full
    cc_map: CCMap = field(default_factory=CCMap)

    def __post_init__(self) -> None:
        if not (self.silence_s > 0 and self.max_phrase_s > 0 and self.min_notes >= 1 and self.max_controls >= 1):
            raise ValueError("silence_s and max_phrase_s must be > 0, min_notes and max_controls >= 1")
        if self.channel is not None and not 0 <= self.channel <= 15:
            raise ValueError(f"channel must be in range 0..15 or None, got {self.channel}")


class PhraseCapture:
    """Collects notes with clock timestamps into phrases; thread-safe (``feed`` runs on the input thread)."""

    def __init__(
        self,
        config: CaptureConfig | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        passthrough: OutputPort | None = None,
        on_control: Callable[[ControlChange], None] | None = None,
    ) -> None:
        self.config = config or CaptureConfig()
        self.controls: queue.Queue[ControlChange] = queue.Queue(self.config.max_controls)
        self._now = now
        self._passthrough = passthrough
        self._on_control = on_control
        self._lock = threading.Lock()
        self._pedal_down = False
        self._reset_locked()

    @property
    def held(self) -> frozenset[int]:
        """Pitches whose keys are down now."""
        with self._lock:
            return frozenset(self._open)

    @property
    def capturing(self) -> bool:
        """A phrase has begun and not yet been returned or discarded."""
        with self._lock:
            return self._start is not None

    def feed(self, msg: mido.Message, time_s: float | None = None) -> None:
        """Take one incoming message; ``time_s`` is its clock time (default ``now()``)."""
        t = self._now() if time_s is None else time_s
        if self.config.channel is not None and getattr(msg, "channel", self.config.channel) != self.config.channel:
            return
        change = None
        with self._lock:
            if msg.type == "control_change" and self.config.cc_map.control_for(msg.control) is not None:
                change = self._control_locked(msg, t)
            elif msg.type in ("note_on", "note_off"):
                self._note_locked(msg, t)
            elif msg.type == "control_change" and msg.control == SUSTAIN_CC:
                self._pedal_down = msg.value >= SUSTAIN_THRESHOLD
                if self._start is not None:
                    self._pedal.append((t, self._pedal_down))
            else:
                return
            if change is None and self._passthrough is not None:
                self._echo_locked(msg)
        if change is not None and self._on_control is not None:
            self._on_control(change)

    def poll(self, time_s: float | None = None) -> list[Note] | None:
        """The phrase that ended by ``time_s`` (default ``now()``), once; times in seconds from its first note.
        Returns None while a phrase is still being played, or when it had fewer than ``min_notes`` notes."""
        t = self._now() if time_s is None else time_s
        with self._lock:
            if self._start is None:
                return None
            silent = not self._open and t - self._last_off >= self.config.silence_s
            if not (silent or self._end_requested or t - self._start >= self.config.max_phrase_s):
                return None
            for pitch in list(self._open):
                self._close_locked(pitch, t)
            notes = self._phrase_locked()
            self._reset_locked()
        if len(notes) < self.config.min_notes:
            logger.debug("discarded a phrase of %d notes (min_notes=%d)", len(notes), self.config.min_notes)
            return None
        return notes

    def reset(self) -> None:
        """Forget the phrase being captured."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._start: float | None = None
        self._last_off = 0.0
        self._end_requested = False
        self._open: dict[int, tuple[float, int]] = {}  # pitch -> (on time, velocity)
        self._done: list[tuple[int, int, float, float]] = []  # (pitch, velocity, start, end), clock times
        self._pedal: list[tuple[float, bool]] = []

    def _note_locked(self, msg: mido.Message, t: float) -> None:
        if msg.type == "note_on" and msg.velocity > 0:
            if self._start is None:
                self._start = t
                self._pedal = [(t, True)] if self._pedal_down else []
            if msg.note in self._open:
                self._close_locked(msg.note, t)  # re-struck without a note-off
            self._open[msg.note] = (t, msg.velocity)
        elif msg.note in self._open:
            self._close_locked(msg.note, t)
            self._last_off = t

    def _close_locked(self, pitch: int, t: float) -> None:
        start, velocity = self._open.pop(pitch)
        self._done.append((pitch, velocity, start, max(t, start)))

    def _phrase_locked(self) -> list[Note]:
        assert self._start is not None
        raw = self._done
        if self.config.apply_sustain and self._pedal:
            raw = apply_sustain_pedal(raw, self._pedal)
        t0 = self._start
        notes = [Note(p, min(127, max(1, v)), max(0.0, s - t0), max(0.0, e - t0)) for p, v, s, e in raw]
        return sorted(notes, key=lambda n: (n.start_s, n.pitch))

    def _control_locked(self, msg: mido.Message, t: float) -> ControlChange | None:
        control = self.config.cc_map.control_for(msg.control)
        assert control is not None
        if control in _BUTTONS and msg.value < BUTTON_THRESHOLD:
            return None  # a button acts on press only
        if control is Control.END_PHRASE and self._start is not None:
            self._end_requested = True
        change = ControlChange(control, control_value(control, msg.value), msg.control, msg.value, t)
        while True:
            try:
                self.controls.put_nowait(change)
                return change
            except queue.Full:  # keep the newest: a knob's latest position matters most
                logger.warning("control queue full (%d): dropped the oldest change", self.config.max_controls)
                with contextlib.suppress(queue.Empty):
                    self.controls.get_nowait()

    def _echo_locked(self, msg: mido.Message) -> None:
        assert self._passthrough is not None
        try:
            self._passthrough.send(msg)
        except MidiIOError as exc:
            logger.warning("passthrough disabled, its port failed: %s", exc)
            self._passthrough = None
