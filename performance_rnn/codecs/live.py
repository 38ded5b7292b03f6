"""Streaming decode of Performance tokens into timed note-on / note-off events for real-time playback.

Pure: no clock, no I/O. Applies the decoding guards as it goes: a NOTE_OFF without its NOTE_ON is ignored, a
re-struck pitch first releases the sounding one, and a note held past ``max_note_duration_s`` gets a forced
note-off at that limit (emitted as soon as the music clock passes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from performance_rnn.codecs.performance import PerformanceCodecConfig, bin_to_velocity

NOTE_ON_BASE, NOTE_OFF_BASE, SHIFT_BASE = 0, 128, 256


@dataclass(frozen=True, slots=True)
class TimedNote:
    time_s: float  # music time from the start of the stream
    on: bool  # True = note-on, False = note-off
    pitch: int
    velocity: int  # 0 for note-offs


class LiveDecoder:
    def __init__(self, cfg: PerformanceCodecConfig, *, start_s: float = 0.0, velocity: int = 64) -> None:
        self.cfg = cfg
        self.time_s = start_s
        self.velocity = velocity
        self.sounding: dict[int, float] = {}  # pitch -> note-on time

    def feed(self, token: int) -> list[TimedNote]:
        """One token -> the timed events it completes (in time order)."""
        cfg = self.cfg
        out: list[TimedNote] = []
        if token < NOTE_OFF_BASE:
            if token in self.sounding:
                out.append(TimedNote(self.time_s, False, token, 0))
            self.sounding[token] = self.time_s
            out.append(TimedNote(self.time_s, True, token, self.velocity))
        elif token < SHIFT_BASE:
            pitch = token - NOTE_OFF_BASE
            if self.sounding.pop(pitch, None) is not None:
                out.append(TimedNote(self.time_s, False, pitch, 0))
        elif token < SHIFT_BASE + cfg.max_shift_steps:
            self.time_s += (token - SHIFT_BASE + 1) / cfg.steps_per_second
            out.extend(self._expire())
        else:
            self.velocity = bin_to_velocity(token - SHIFT_BASE - cfg.max_shift_steps + 1, cfg)
        return out

    def _expire(self) -> list[TimedNote]:
        limit = self.cfg.max_note_duration_s
        late = sorted((start + limit, p) for p, start in self.sounding.items() if self.time_s - start > limit)
        for _, p in late:
            del self.sounding[p]
        return [TimedNote(t, False, p, 0) for t, p in late]

    def release_all(self) -> list[TimedNote]:
        """Note-offs for everything still sounding, at the current music time."""
        out = [TimedNote(self.time_s, False, p, 0) for p in sorted(self.sounding)]
        self.sounding.clear()
        return out
