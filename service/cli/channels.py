"""MIDI channels on the command line are numbered 1..16, as DAWs show them; mido numbers them 0..15."""

from __future__ import annotations

CHANNEL_HELP = "MIDI channel 1..16, numbered as DAWs show them (default 1)"


def midi_channel(number: int, flag: str = "--channel") -> int:
    """A channel as DAWs number it (1..16) -> mido's 0..15. Raises ValueError naming ``flag``."""
    if not 1 <= number <= 16:
        raise ValueError(f"{flag} is a MIDI channel 1..16 (as DAWs number them), got {number}")
    return number - 1
