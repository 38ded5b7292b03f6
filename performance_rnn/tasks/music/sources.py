"""Where music comes from: a folder of MIDI files (through an injected reader) or music21's bundled corpus.

Each source yields pieces as (piece_id, notes). performance_rnn does not read MIDI itself (midi_io does), so
the MIDI reader is passed in by the caller; music21 scores are turned into notes here, without MIDI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from midi_io.notes import Note

MIDI_SUFFIXES = (".mid", ".midi")
MUSIC21_SUFFIXES = (".krn", ".abc", ".mxl", ".xml", ".musicxml")  # .rntxt (chord analyses) are not music
DEFAULT_VELOCITY = 80  # scores carry no performed dynamics


@dataclass(frozen=True)
class Source:
    """One file to read. ``kind`` is "midi" or "music21"."""

    path: str
    kind: str


def find_sources(folders: list[str], music21_corpus: bool) -> list[Source]:
    """Every .mid/.midi file under ``folders`` (recursively) plus, if asked, music21's corpus files, sorted."""
    found = [Source(str(p), "midi") for d in folders for p in sorted(Path(d).rglob("*"))
             if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()]
    if music21_corpus:
        from music21 import corpus  # imported lazily: only this source needs it

        found += [Source(str(p), "music21") for p in sorted(corpus.getPaths(), key=str)
                  if str(p).lower().endswith(MUSIC21_SUFFIXES)]
    return found


def split_of(piece_id: str, validation: float = 0.1, test: float = 0.1) -> str:
    """Deterministic split by piece: a hash of the id, so adding files never moves existing pieces."""
    u = int(hashlib.sha1(piece_id.encode()).hexdigest()[:8], 16) / 0x100000000
    return "test" if u < test else "validation" if u < test + validation else "train"


def read_source(source: Source, midi_reader: Callable[[str], list[Note]]) -> Iterator[tuple[str, list[Note]]]:
    """Yield (piece_id, notes) for each piece in the file (an opus of tunes gives several)."""
    if source.kind == "midi":
        yield source.path, [n for n in midi_reader(source.path) if not n.is_drum]
        return
    from music21 import converter

    parsed = converter.parse(source.path)
    scores = list(parsed.scores) if hasattr(parsed, "scores") and len(parsed.scores) else [parsed]
    for i, score in enumerate(scores):
        name = _corpus_name(source.path) + (f"#{i}" if len(scores) > 1 else "")
        yield name, music21_notes(score)


def _corpus_name(path: str) -> str:
    return "music21:" + path.split("/corpus/", 1)[-1]


def music21_notes(score: object) -> list[Note]:
    """A music21 score -> notes in seconds, all parts merged onto one piano, ties merged, tempo applied."""
    s = score.stripTies()  # type: ignore[attr-defined]
    marks = [(float(a), float(b), m) for a, b, m in s.metronomeMarkBoundaries() if b > a]
    if not marks:
        marks = [(0.0, float("inf"), None)]

    def seconds(offset: float) -> float:
        t = 0.0
        for a, b, mark in marks:
            qpm = 120.0 if mark is None else float(mark.getQuarterBPM() or 120.0)
            if offset <= a:
                break
            t += (min(offset, b) - a) * 60.0 / qpm
        if offset > marks[-1][1]:
            mark = marks[-1][2]
            qpm = 120.0 if mark is None else float(mark.getQuarterBPM() or 120.0)
            t += (offset - marks[-1][1]) * 60.0 / qpm
        return t

    notes = []
    for el in s.flatten().notes:
        start_q = float(el.offset)
        dur_q = float(el.quarterLength)
        if dur_q <= 0:  # grace notes
            continue
        velocity = el.volume.velocity or DEFAULT_VELOCITY
        start, end = seconds(start_q), seconds(start_q + dur_q)
        for p in el.pitches:
            if 0 <= p.midi <= 127 and end > start:
                notes.append(Note(int(p.midi), int(min(127, max(1, velocity))), start, end))
    notes.sort(key=lambda n: (n.start_s, n.pitch))
    return notes
