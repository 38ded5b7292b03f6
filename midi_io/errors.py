"""Errors raised by midi_io. One base class; callers catch ``MidiIOError``."""


class MidiIOError(Exception):
    """Base for midi_io failures."""


class MidiDecodeError(MidiIOError):
    """Bytes or a file are not a readable Standard MIDI File (the message names the file and reason)."""


class PortUnavailableError(MidiIOError):
    """A MIDI port could not be opened, or vanished while in use."""


class AudioUnavailable(MidiIOError):
    """Audio rendering needs FluidSynth and a General MIDI SoundFont, and one of them is missing (the message
    says how to install it). MIDI features work without them."""


class AudioRenderError(MidiIOError):
    """FluidSynth ran but did not produce the audio file (the message carries its error)."""
