"""MIDI files <-> notes, MIDI ports, the real-time player and input capture. Never imports torch."""

from midi_io.errors import MidiDecodeError, MidiIOError, PortUnavailableError
from midi_io.notes import Note

__all__ = ["MidiDecodeError", "MidiIOError", "Note", "PortUnavailableError"]
