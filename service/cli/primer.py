"""What the CLI keeps of a ``--primer FILE.mid``: the same bounded primer the service keeps of an upload."""

from __future__ import annotations

import sys

from midi_io.files import read_notes
from midi_io.notes import PRIMER_MAX_NOTES, PRIMER_MAX_SECONDS, Note, trim_primer


def primer_from_file(path: str) -> list[Note]:
    """The file's pitched notes that start in its last 30 s, and of those the last 2,000, saying so when that
    trims it (a tiny file can describe hours of music). Raises ValueError when nothing is left,
    MidiDecodeError when the file is unreadable."""
    notes = [n for n in read_notes(path) if not n.is_drum]
    primer = trim_primer(notes)
    if not primer:
        raise ValueError(f"{path}: the primer holds no notes")
    if len(primer) < len(notes):
        print(f"primer: kept the last {len(primer)} of {len(notes)} notes (a primer is at most the last "
              f"{PRIMER_MAX_SECONDS:g} s and {PRIMER_MAX_NOTES} notes of its file)", file=sys.stderr)
    return primer
