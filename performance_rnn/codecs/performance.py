"""Magenta-compatible Performance events: notes <-> events <-> token ids, and the one decoder of token streams.

Vocabulary (note_seq's PerformanceOneHotEncoding order, 388 tokens with 32 velocity bins):
NOTE_ON 0..127 -> ids 0..127, NOTE_OFF 0..127 -> 128..255, TIME_SHIFT 1..100 steps -> 256..355,
VELOCITY bin 1..32 -> 356..387. One step is 1/steps_per_second seconds (10 ms by default). Every id offset is
read off one table (``_ranges``), through ``token_layout``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

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


@dataclass(frozen=True, slots=True)
class TokenLayout:
    """The ids of each event type, read off the table: the id of value v of a type is ``ids.start + v - min``
    (NOTE_ON and NOTE_OFF values start at pitch 0, TIME_SHIFT and VELOCITY values at 1)."""

    note_on: range
    note_off: range
    time_shift: range
    velocity: range

    @property
    def size(self) -> int:
        return max(r.stop for r in (self.note_on, self.note_off, self.time_shift, self.velocity))


@cache
def token_layout(cfg: PerformanceCodecConfig) -> TokenLayout:
    """Where each event type's ids lie in ``cfg``'s vocabulary (computed once per config)."""
    ids: dict[str, range] = {}
    offset = 0
    for etype, lo, hi in _ranges(cfg):
        ids[etype.name.lower()] = range(offset, offset + hi - lo + 1)
        offset += hi - lo + 1
    return TokenLayout(**ids)


def vocab_size(cfg: PerformanceCodecConfig) -> int:
    return token_layout(cfg).size


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
    ids = token_layout(cfg).velocity
    for t in tokens:
        if t in ids:
            velocity = bin_to_velocity(t - ids.start + 1, cfg)
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
    """Events -> notes, as note_seq's ``Performance.to_sequence(max_note_duration=...)``: the rules of
    ``PerformanceDecoder`` (a NOTE_OFF closes the oldest open note of its pitch and is ignored when none is open;
    a note held longer than ``cfg.max_note_duration_s`` ends at that limit; notes still open at the end end
    there), and a note that would last no time is dropped. Sorted by (start, pitch)."""
    decoder = NoteDecoder(cfg, start_s=start_s, default_velocity=default_velocity)
    notes: list[Note] = []
    for e in events:
        notes.extend(decoder.feed(e))
    notes.extend(decoder.finish())
    notes.sort(key=lambda n: (n.start_s, n.pitch))
    return notes


@dataclass(frozen=True, slots=True)
class TimedNote:
    """A note-on or note-off at a music time (seconds from the decoder's ``start_s``)."""

    time_s: float
    on: bool  # True = note-on, False = note-off
    pitch: int
    velocity: int  # 0 for note-offs


class PerformanceDecoder:
    """Token ids -> timed note-on/note-off events, one token at a time: the one decoder, used for live playback
    (on the engine's thread, per token) and, through ``NoteDecoder``, for files.

    Its rules are note_seq's (``Performance.to_sequence(max_note_duration=...)``):

    - a NOTE_ON opens a note at the current velocity; a pitch struck again while its note sounds opens a second
      note (each keeps its own on and off, as ``notes_to_events`` encodes two overlapping notes of one pitch);
    - a NOTE_OFF closes the oldest open note of its pitch, and is ignored when none is open;
    - a note held longer than ``cfg.max_note_duration_s`` gets its note-off at that limit, emitted as soon as a
      TIME_SHIFT passes it; it stays in its pitch's queue, so that the NOTE_OFF that ends it later closes nothing
      newer (as the keyboard mask, ``performance_rnn.keyboard``, counts it);
    - ``release_all`` ends every open note at the current time.

    Every note-on gets exactly one note-off. A note closed in the step it opened gets its note-off at the same
    time (a file drops it: ``NoteDecoder``). Events come out in time order. Pure: no clock, no I/O.
    """

    __slots__ = (
        "_limit",
        "_note_off",
        "_note_on",
        "_sps",
        "_time_shift",
        "_velocity",
        "cfg",
        "open",
        "start_s",
        "step",
        "velocity",
    )

    def __init__(self, cfg: PerformanceCodecConfig, *, start_s: float = 0.0, velocity: int = 64) -> None:
        layout = token_layout(cfg)
        self.cfg = cfg
        self.start_s = start_s
        self.step = 0  # steps since start_s (integers: no float drift)
        self.velocity = velocity
        self.open: dict[int, list[list[int]]] = {}  # pitch -> [[start step, velocity, released 0/1], ...] oldest first
        self._limit = round(cfg.max_note_duration_s * cfg.steps_per_second)
        self._sps = cfg.steps_per_second
        self._note_on, self._note_off = layout.note_on, layout.note_off
        self._time_shift, self._velocity = layout.time_shift, layout.velocity

    @property
    def time_s(self) -> float:
        return self.start_s + self.step / self._sps

    def sounding(self) -> set[int]:
        """Pitches with a note still sounding (not yet released by the duration limit)."""
        return {p for p, q in self.open.items() if any(not r for _, _, r in q)}

    def feed(self, token: int) -> list[TimedNote]:
        """One token id -> the events it completes, in time order. Raises CodecError for an id outside the
        vocabulary."""
        if token in self._note_on:
            pitch = token - self._note_on.start
            queue = self.open.get(pitch)
            if queue is None:
                self.open[pitch] = [[self.step, self.velocity, 0]]
            else:
                queue.append([self.step, self.velocity, 0])
            return [TimedNote(self.start_s + self.step / self._sps, True, pitch, self.velocity)]
        if token in self._note_off:
            pitch = token - self._note_off.start
            queue = self.open.get(pitch)
            if not queue:  # no note of this pitch is open: nothing to end
                return []
            released = queue.pop(0)[2]
            if not queue:
                del self.open[pitch]
            return [] if released else [TimedNote(self.start_s + self.step / self._sps, False, pitch, 0)]
        if token in self._time_shift:
            self.step += token - self._time_shift.start + 1
            return self._expire() if self.open else []
        if token in self._velocity:
            self.velocity = bin_to_velocity(token - self._velocity.start + 1, self.cfg)
            return []
        raise CodecError(f"token must be in range 0..{self._velocity.stop - 1}, got {token}")

    def feed_event(self, event: Event) -> list[TimedNote]:
        return self.feed(encode_event(event, self.cfg))

    def release_all(self) -> list[TimedNote]:
        """Note-offs for every note still sounding, at the current time (by pitch, oldest first); the decoder is
        then empty."""
        t = self.time_s
        out = [TimedNote(t, False, p, 0) for p in sorted(self.open) for item in self.open[p] if not item[2]]
        self.open.clear()
        return out

    def _expire(self) -> list[TimedNote]:
        late: list[tuple[int, int]] = []  # (end step, pitch)
        for pitch, queue in self.open.items():
            for item in queue:
                if not item[2] and self.step - item[0] > self._limit:
                    item[2] = 1
                    late.append((item[0] + self._limit, pitch))
        if not late:
            return []
        late.sort()  # stable: one pitch's notes end oldest first
        return [TimedNote(self.start_s + end / self._sps, False, pitch, 0) for end, pitch in late]


class NoteDecoder:
    """Events -> notes as they close (for files and their streaming): ``PerformanceDecoder``'s events paired
    into notes, each note-off with the oldest open note-on of its pitch (the decoder's own order), dropping the
    notes that last no time. A note held past the duration limit is returned when the clock passes the limit."""

    def __init__(self, cfg: PerformanceCodecConfig, *, start_s: float = 0.0, default_velocity: int = 64) -> None:
        self.decoder = PerformanceDecoder(cfg, start_s=start_s, velocity=default_velocity)
        self._ons: dict[int, list[TimedNote]] = {}  # pitch -> its open note-ons, oldest first

    @property
    def time_s(self) -> float:
        return self.decoder.time_s

    def feed(self, event: Event) -> list[Note]:
        return self._pair(self.decoder.feed_event(event))

    def finish(self) -> list[Note]:
        """Close every open note at the current time."""
        return self._pair(self.decoder.release_all())

    def _pair(self, events: list[TimedNote]) -> list[Note]:
        notes = []
        for ev in events:
            if ev.on:
                self._ons.setdefault(ev.pitch, []).append(ev)
                continue
            on = self._ons[ev.pitch].pop(0)
            if ev.time_s > on.time_s:
                notes.append(Note(ev.pitch, on.velocity, on.time_s, ev.time_s))
        return notes


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
