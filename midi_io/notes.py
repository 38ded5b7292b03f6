"""The neutral ``Note`` value type shared by midi_io and performance_rnn (no mido, no torch)."""

from __future__ import annotations

from dataclasses import dataclass


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
