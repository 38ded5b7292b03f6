"""The neutral ``Note`` value type shared by midi_io and performance_rnn (no mido, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PRIMER_MAX_SECONDS = 30.0  # a primer is a file's last 30 s...
PRIMER_MAX_NOTES = 2000  # ... and of those its last 2,000 notes: about 10k tokens at most, however dense the file


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note. Times in seconds from the start of the piece."""

    pitch: int  # MIDI key 0..127
    velocity: int  # 1..127
    start_s: float
    end_s: float
    program: int = 0  # General MIDI program 0..127 (0 = acoustic grand piano)
    is_drum: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch must be in range 0..127, got {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"velocity must be in range 1..127, got {self.velocity}")
        if not self.end_s >= self.start_s >= 0.0:
            raise ValueError(f"need 0 <= start_s <= end_s, got {self.start_s}..{self.end_s}")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def trim_primer(notes: Sequence[Note], keep_s: float = PRIMER_MAX_SECONDS,
                keep_notes: int = PRIMER_MAX_NOTES) -> list[Note]:
    """The pitched notes that start in the last ``keep_s`` seconds of ``notes`` (by the latest note-off), and
    of those the last ``keep_notes`` by onset: what a primer keeps, so that the work of priming is bounded
    whatever a file holds (a 50-byte file can describe hours of music). Times are left as they are."""
    pitched = sorted((n for n in notes if not n.is_drum), key=lambda n: (n.start_s, n.pitch))
    if not pitched:
        return []
    end = max(n.end_s for n in pitched)
    return [n for n in pitched if n.start_s >= end - keep_s][-keep_notes:]
