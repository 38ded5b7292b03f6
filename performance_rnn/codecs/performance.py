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


def quantize_seconds(seconds: float, cfg: PerformanceCodecConfig) -> int:
    """Seconds -> steps, rounding half up (note_seq's ``quantize_to_step`` with its 0.5 cutoff)."""
    return int(seconds * cfg.steps_per_second + 0.5)


def notes_to_events(notes: Sequence[Note], cfg: PerformanceCodecConfig) -> list[Event]:
    """Notes -> events on the step grid, exactly as note_seq's ``Performance`` makes them.

    Times are quantized half up; a note that quantizes to no length gets one step. Notes are ordered by
    (start, pitch) (stable: equal notes keep their input order); all on/off points are sorted by (step,
    that order, off after on of the same note), so within one step events follow the notes' order, not
    "offs first". Two notes of one pitch that overlap each keep their own on and off. A VELOCITY event
    precedes a NOTE_ON whose bin differs from the last one.
    """
    ordered = sorted(notes, key=lambda n: (n.start_s, n.pitch))
    points: list[tuple[int, int, bool]] = []  # (step, note index, is_offset)
    for i, n in enumerate(ordered):
        start = quantize_seconds(n.start_s, cfg)
        end = quantize_seconds(n.end_s, cfg)
        if start < 0:
            raise CodecError(f"note at negative time {n.start_s}")
        points.append((start, i, False))
        points.append((end if end != start else end + 1, i, True))
    points.sort()
    events: list[Event] = []
    step = 0
    current_bin = 0
    for t, i, is_off in points:
        if t > step:
            while t > step + cfg.max_shift_steps:
                events.append(Event(EventType.TIME_SHIFT, cfg.max_shift_steps))
                step += cfg.max_shift_steps
            events.append(Event(EventType.TIME_SHIFT, t - step))
            step = t
        note = ordered[i]
        if not is_off:
            vbin = velocity_to_bin(note.velocity, cfg)
            if vbin != current_bin:
                events.append(Event(EventType.VELOCITY, vbin))
                current_bin = vbin
        events.append(Event(EventType.NOTE_OFF if is_off else EventType.NOTE_ON, note.pitch))
    return events


def events_to_notes(
    events: Iterable[Event], cfg: PerformanceCodecConfig, *, start_s: float = 0.0, default_velocity: int = 64
) -> list[Note]:
    """Events -> notes, as note_seq's ``Performance.to_sequence(max_note_duration=...)``: a NOTE_OFF closes
    the oldest open note of its pitch and is ignored when none is open; a note that would last no time is
    dropped; a note held longer than ``cfg.max_note_duration_s`` ends at that limit; notes still open at
    the end end there. Sorted by (start, pitch)."""
    decoder = NoteDecoder(cfg, start_s=start_s, default_velocity=default_velocity)
    notes: list[Note] = []
    for e in events:
        notes.extend(decoder.feed(e))
    notes.extend(decoder.finish())
    notes.sort(key=lambda n: (n.start_s, n.pitch))
    return notes


class NoteDecoder:
    """Incremental events -> notes decoder (for streaming) with the rules of ``events_to_notes``.

    ``feed`` returns the notes that closed, as soon as they close: a note held past the duration limit is
    returned when the clock passes the limit, and stays in its pitch's queue (as in note_seq) so that the
    NOTE_OFF that ends it later does not close a newer note of the same pitch.
    """

    def __init__(self, cfg: PerformanceCodecConfig, *, start_s: float = 0.0, default_velocity: int = 64) -> None:
        self.cfg = cfg
        self.step = 0  # steps since start_s (integers: no float drift)
        self.start_s = start_s
        self.velocity = default_velocity
        self.open: dict[int, list[list[int]]] = {}  # pitch -> [[start step, velocity, released 0/1], ...] oldest first
        self._limit = round(cfg.max_note_duration_s * cfg.steps_per_second)

    @property
    def time_s(self) -> float:
        return self.start_s + self.step / self.cfg.steps_per_second

    def sounding(self) -> set[int]:
        """Pitches with a note still sounding (not yet released by the duration limit)."""
        return {p for p, q in self.open.items() if any(not r for _, _, r in q)}

    def feed(self, event: Event) -> list[Note]:
        if event.type == EventType.TIME_SHIFT:
            self.step += event.value
            return self._expire()
        if event.type == EventType.VELOCITY:
            self.velocity = bin_to_velocity(event.value, self.cfg)
        elif event.type == EventType.NOTE_ON:
            self.open.setdefault(event.value, []).append([self.step, self.velocity, 0])
        elif event.type == EventType.NOTE_OFF and self.open.get(event.value):
            queue = self.open[event.value]
            start, velocity, released = queue.pop(0)
            if not queue:
                del self.open[event.value]
            if not released and self.step > start:
                return [self._note(event.value, velocity, start, self.step)]
        return []

    def finish(self) -> list[Note]:
        """Close every open note at the current step (or its duration limit, whichever is first)."""
        out = [self._note(p, v, s, self.step) for p, q in self.open.items() for s, v, r in q
               if not r and self.step > s]
        self.open.clear()
        return out

    def _expire(self) -> list[Note]:
        out = []
        for pitch, queue in self.open.items():
            for item in queue:
                if not item[2] and self.step - item[0] > self._limit:
                    item[2] = 1
                    out.append(self._note(pitch, item[1], item[0], item[0] + self._limit))
        out.sort(key=lambda n: (n.end_s, n.pitch))
        return out

    def _note(self, pitch: int, velocity: int, start: int, end: int) -> Note:
        end = min(end, start + self._limit)
        sps = self.cfg.steps_per_second
        return Note(pitch, velocity, self.start_s + start / sps, self.start_s + end / sps)


class PhraseEncoder:
    """Notes as a player plays them -> token ids, incrementally (the jam primes the model while a phrase is
    played). Times are seconds on any clock, from ``t0`` (the phrase's first note-on); the rules are those of
    ``notes_to_events`` on the finished phrase, as far as they can be applied without waiting: steps round half
    up, a VELOCITY precedes a NOTE_ON whose bin changed, a note that would last no step lasts one (its NOTE_OFF
    moves a step later, and what follows in that step with it). With ``sustain``, a key released while the
    pedal is down sounds on until the pedal lifts or the key is struck again, as ``midi_io.files.sustain_notes``.
    """

    def __init__(self, cfg: PerformanceCodecConfig, t0: float, *, sustain: bool = True, pedal: bool = False) -> None:
        self.cfg, self.t0, self.sustain = cfg, t0, sustain
        self.step = 0
        self.velocity_bin = 0
        self.sounding: dict[int, tuple[float, int]] = {}  # pitch -> (time, step) of its NOTE_ON
        self.sustained: set[int] = set()  # released keys the pedal holds
        self.pedal = pedal and sustain  # the pedal may be down before the first note

    def note_on(self, pitch: int, velocity: int, time_s: float) -> list[int]:
        out = self._advance(time_s)
        if pitch in self.sounding:  # struck again while it sounds (held by the pedal): the old note ends here
            out += self._off(pitch)
        vbin = velocity_to_bin(velocity, self.cfg)
        if vbin != self.velocity_bin:
            out.append(encode_event(Event(EventType.VELOCITY, vbin), self.cfg))
            self.velocity_bin = vbin
        out.append(encode_event(Event(EventType.NOTE_ON, pitch), self.cfg))
        self.sounding[pitch] = (time_s, self.step)
        return out

    def note_off(self, pitch: int, time_s: float) -> list[int]:
        if pitch not in self.sounding or pitch in self.sustained:
            return []
        if self.sustain and self.pedal:
            self.sustained.add(pitch)
            return []
        return self._advance(time_s) + self._off(pitch)

    def pedal_change(self, down: bool, time_s: float) -> list[int]:
        self.pedal = down and self.sustain
        if self.pedal or not self.sustained:
            return []
        out = self._advance(time_s)
        for pitch in self._by_onset(self.sustained):
            out += self._off(pitch)
        return out

    def release_all(self, time_s: float) -> list[int]:
        """NOTE_OFFs of everything that sounds (the phrase is over); nothing when nothing sounds."""
        if not self.sounding:
            return []
        out = self._advance(time_s)
        for pitch in self._by_onset(self.sounding):
            out += self._off(pitch)
        return out

    def _by_onset(self, pitches: Iterable[int]) -> list[int]:
        """Notes ending together end in the order of their onsets (then pitch), as ``notes_to_events`` orders them."""
        return sorted(pitches, key=lambda p: (self.sounding[p][0], p))

    def _advance(self, time_s: float) -> list[int]:
        step = max(self.step, quantize_seconds(max(0.0, time_s - self.t0), self.cfg))
        return self._shift(step - self.step)

    def _shift(self, steps: int) -> list[int]:
        out = []
        while steps > 0:
            n = min(steps, self.cfg.max_shift_steps)
            out.append(encode_event(Event(EventType.TIME_SHIFT, n), self.cfg))
            self.step += n
            steps -= n
        return out

    def _off(self, pitch: int) -> list[int]:
        out = self._shift(1) if self.sounding[pitch][1] == self.step else []
        del self.sounding[pitch]
        self.sustained.discard(pitch)
        return out + [encode_event(Event(EventType.NOTE_OFF, pitch), self.cfg)]
