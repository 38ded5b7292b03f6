"""Magenta-compatible Performance events: notes <-> events <-> token ids.

Vocabulary (note_seq's PerformanceOneHotEncoding order, 388 tokens with 32 velocity bins):
NOTE_ON 0..127 -> ids 0..127, NOTE_OFF 0..127 -> 128..255, TIME_SHIFT 1..100 steps -> 256..355,
VELOCITY bin 1..32 -> 356..387. One step is 1/steps_per_second seconds (10 ms by default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from midi_io.notes import Note
from performance_rnn.errors import CodecError


class EventType(IntEnum):
    NOTE_ON = 0
    NOTE_OFF = 1
    TIME_SHIFT = 2
    VELOCITY = 3


@dataclass(frozen=True)
class PerformanceCodecConfig:
    steps_per_second: int = 100  # 10 ms per TIME_SHIFT step, as note_seq
    max_shift_steps: int = 100  # one TIME_SHIFT covers up to 1 s; longer gaps chain shifts
    num_velocity_bins: int = 32  # bins of width ceil(127/32) = 4 over velocities 1..127
    max_note_duration_s: float = 5.0  # decoding guard: notes held longer are released


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    value: int  # pitch 0..127, shift steps 1..max_shift_steps, or velocity bin 1..num_velocity_bins


def _ranges(cfg: PerformanceCodecConfig) -> tuple[tuple[EventType, int, int], ...]:
    """The one table both directions walk: (type, min value, max value) in id order."""
    return (
        (EventType.NOTE_ON, 0, 127),
        (EventType.NOTE_OFF, 0, 127),
        (EventType.TIME_SHIFT, 1, cfg.max_shift_steps),
        (EventType.VELOCITY, 1, cfg.num_velocity_bins),
    )


def vocab_size(cfg: PerformanceCodecConfig) -> int:
    return sum(hi - lo + 1 for _, lo, hi in _ranges(cfg))


def encode_event(event: Event, cfg: PerformanceCodecConfig) -> int:
    """Event -> token id. Raises CodecError for an out-of-range value."""
    offset = 0
    for etype, lo, hi in _ranges(cfg):
        if event.type == etype:
            if not lo <= event.value <= hi:
                raise CodecError(f"{etype.name} value must be in range {lo}..{hi}, got {event.value}")
            return offset + event.value - lo
        offset += hi - lo + 1
    raise CodecError(f"unknown event type {event.type!r}")


def decode_token(token: int, cfg: PerformanceCodecConfig) -> Event:
    """Token id -> Event. Raises CodecError for an id outside the vocabulary."""
    offset = 0
    for etype, lo, hi in _ranges(cfg):
        size = hi - lo + 1
        if offset <= token < offset + size:
            return Event(etype, lo + token - offset)
        offset += size
    raise CodecError(f"token must be in range 0..{offset - 1}, got {token}")


def encode(events: Iterable[Event], cfg: PerformanceCodecConfig) -> list[int]:
    return [encode_event(e, cfg) for e in events]


def decode(tokens: Iterable[int], cfg: PerformanceCodecConfig) -> list[Event]:
    return [decode_token(int(t), cfg) for t in tokens]


def velocity_to_bin(velocity: int, cfg: PerformanceCodecConfig) -> int:
    """MIDI velocity 1..127 -> bin 1..num_velocity_bins (note_seq's binning)."""
    size = math.ceil(127 / cfg.num_velocity_bins)
    return min(cfg.num_velocity_bins, (max(1, velocity) - 1) // size + 1)


def bin_to_velocity(velocity_bin: int, cfg: PerformanceCodecConfig) -> int:
    """Bin -> the lowest MIDI velocity of that bin (note_seq's inverse)."""
    size = math.ceil(127 / cfg.num_velocity_bins)
    return min(127, (velocity_bin - 1) * size + 1)


def final_velocity(tokens: Iterable[int], cfg: PerformanceCodecConfig, default: int = 64) -> int:
    """The MIDI velocity in force after ``tokens`` (the last VELOCITY event's), else ``default``: what a
    decoder continuing after a primer must start from."""
    velocity = default
    lo = 256 + cfg.max_shift_steps  # the first VELOCITY id
    for t in tokens:
        if lo <= t < lo + cfg.num_velocity_bins:
            velocity = bin_to_velocity(t - lo + 1, cfg)
    return velocity


def notes_to_events(notes: Sequence[Note], cfg: PerformanceCodecConfig) -> list[Event]:
    """Notes -> events on the step grid. Simultaneous offs come before ons; velocity events only on change."""
    points: list[tuple[int, int, int, int]] = []  # (step, 0=off/1=on, pitch, velocity)
    for n in notes:
        start = round(n.start_s * cfg.steps_per_second)
        end = max(start + 1, round(n.end_s * cfg.steps_per_second))
        points.append((start, 1, n.pitch, n.velocity))
        points.append((end, 0, n.pitch, n.velocity))
    points.sort()
    events: list[Event] = []
    step = 0
    current_bin = 0
    sounding: dict[int, int] = {}  # pitch -> open count, so overlapping same-pitch notes stay balanced
    for t, is_on, pitch, velocity in points:
        while t > step:
            shift = min(cfg.max_shift_steps, t - step)
            events.append(Event(EventType.TIME_SHIFT, shift))
            step += shift
        if is_on:
            vbin = velocity_to_bin(velocity, cfg)
            if vbin != current_bin:
                events.append(Event(EventType.VELOCITY, vbin))
                current_bin = vbin
            if sounding.get(pitch, 0) > 0:  # re-strike: close the sounding one first
                events.append(Event(EventType.NOTE_OFF, pitch))
                sounding[pitch] -= 1
            events.append(Event(EventType.NOTE_ON, pitch))
            sounding[pitch] = sounding.get(pitch, 0) + 1
        elif sounding.get(pitch, 0) > 0:
            events.append(Event(EventType.NOTE_OFF, pitch))
            sounding[pitch] -= 1
    return events


def events_to_notes(
    events: Iterable[Event], cfg: PerformanceCodecConfig, *, start_s: float = 0.0, default_velocity: int = 64
) -> list[Note]:
    """Events -> notes, with the guards: a NOTE_OFF without its NOTE_ON is ignored; a note held longer than
    ``cfg.max_note_duration_s`` (or still open at the end) is released at that limit (or at the end)."""
    decoder = NoteDecoder(cfg, start_s=start_s, default_velocity=default_velocity)
    notes: list[Note] = []
    for e in events:
        notes.extend(decoder.feed(e))
    notes.extend(decoder.finish())
    notes.sort(key=lambda n: (n.start_s, n.pitch))
    return notes


class NoteDecoder:
    """Incremental events -> notes decoder (for streaming). ``feed`` returns the notes that closed."""

    def __init__(self, cfg: PerformanceCodecConfig, *, start_s: float = 0.0, default_velocity: int = 64) -> None:
        self.cfg = cfg
        self.time_s = start_s
        self.velocity = default_velocity
        self.open: dict[int, tuple[float, int]] = {}  # pitch -> (start_s, velocity)

    def feed(self, event: Event) -> list[Note]:
        closed = self._expire(self.time_s)
        if event.type == EventType.TIME_SHIFT:
            new_time = self.time_s + event.value / self.cfg.steps_per_second
            closed += self._expire(new_time)
            self.time_s = new_time
        elif event.type == EventType.VELOCITY:
            self.velocity = bin_to_velocity(event.value, self.cfg)
        elif event.type == EventType.NOTE_ON:
            if event.value in self.open:  # re-strike closes the sounding note
                closed.append(self._close(event.value, self.time_s))
            self.open[event.value] = (self.time_s, self.velocity)
        elif event.type == EventType.NOTE_OFF and event.value in self.open:
            closed.append(self._close(event.value, self.time_s))
        return closed

    def finish(self) -> list[Note]:
        """Release every open note at the current time (or its maximum duration, whichever is first)."""
        return [self._close(p, self.time_s) for p in list(self.open)]

    def _expire(self, until_s: float) -> list[Note]:
        limit = self.cfg.max_note_duration_s
        return [self._close(p, s + limit) for p, (s, _) in list(self.open.items()) if until_s - s > limit]

    def _close(self, pitch: int, end_s: float) -> Note:
        start, velocity = self.open.pop(pitch)
        end = min(end_s, start + self.cfg.max_note_duration_s)
        return Note(pitch, velocity, start, max(end, start + 1.0 / self.cfg.steps_per_second))
