"""Music from music21 (``sources.music21_notes``, ``read_source``, ``build_dataset(music21_corpus=True)``): a
score's notes in seconds under its tempo marks, ties merged, chords split, grace notes dropped, all parts on one
piano; an opus gives one piece per score; a corpus build reads real corpus files into the splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from music21 import chord, note, stream, tempo, tie

from midi_io.files import read_notes
from midi_io.notes import Note
from performance_rnn.tasks.music.build import build_dataset, load_split
from performance_rnn.tasks.music.sources import (
    DEFAULT_VELOCITY,
    Source,
    find_sources,
    music21_notes,
    read_source,
    split_of,
)


def _score() -> stream.Score:
    """Two parts; a quarter is 1 s up to quarter 4 (60 bpm), then 0.5 s (120 bpm)."""
    upper = stream.Part()
    upper.insert(0, tempo.MetronomeMark(number=60))
    upper.insert(4, tempo.MetronomeMark(number=120))
    upper.insert(0, note.Note("C4", quarterLength=1))
    tied_a, tied_b = note.Note("D4", quarterLength=1), note.Note("D4", quarterLength=1)
    tied_a.tie, tied_b.tie = tie.Tie("start"), tie.Tie("stop")
    upper.insert(1, tied_a)
    upper.insert(2, tied_b)
    upper.insert(3, note.Note("F4", quarterLength=0).getGrace())  # a grace note: no duration, dropped
    upper.insert(3, chord.Chord(["E4", "G4"], quarterLength=2))  # across the tempo change
    loud = note.Note("A4", quarterLength=1)
    loud.volume.velocity = 100
    upper.insert(5, loud)
    lower = stream.Part()
    lower.insert(0, note.Note("C3", quarterLength=4))
    return stream.Score([upper, lower])


def test_a_score_becomes_notes_in_seconds() -> None:
    v = DEFAULT_VELOCITY
    assert music21_notes(_score()) == [
        Note(48, v, 0.0, 4.0),  # the second part, merged
        Note(60, v, 0.0, 1.0),
        Note(62, v, 1.0, 3.0),  # two tied quarters: one note
        Note(64, v, 3.0, 4.5),  # a quarter at 60 bpm, then one at 120
        Note(67, v, 3.0, 4.5),
        Note(69, 100, 4.5, 5.0),  # its own velocity
    ]


def test_an_opus_gives_one_piece_per_tune(tmp_path: Path) -> None:
    abc = tmp_path / "two.abc"
    abc.write_text("X:1\nT:One\nM:4/4\nL:1/4\nQ:1/4=120\nK:C\nCDEF|G4|]\n\n"
                   "X:2\nT:Two\nM:4/4\nL:1/4\nQ:1/4=60\nK:G\nGABc|d4|]\n", encoding="utf-8")
    pieces = list(read_source(Source(str(abc), "music21"), midi_reader=lambda path: []))
    assert [name for name, _ in pieces] == [f"music21:{abc}#0", f"music21:{abc}#1"]
    one, two = (notes for _, notes in pieces)
    assert [n.pitch for n in one] == [60, 62, 64, 65, 67] and one[-1].end_s == pytest.approx(4.0)  # 120 bpm
    assert [n.pitch for n in two] == [67, 69, 71, 72, 74] and two[-1].end_s == pytest.approx(8.0)  # 60 bpm


def test_the_corpus_source_lists_music_files_only() -> None:
    found = find_sources([], music21_corpus=True)
    assert found and all(s.kind == "music21" for s in found)
    assert any(s.path.endswith("bach/bwv66.6.mxl") for s in found)
    assert not any(s.path.endswith(".rntxt") for s in found)  # chord analyses are not music
    assert [s.path for s in found] == sorted(s.path for s in found)


def test_a_corpus_build_reads_real_pieces_into_the_splits(tmp_path: Path) -> None:
    """Three Bach chorales (the first corpus files after the slow-to-parse Aird's Airs books)."""
    summary = build_dataset(tmp_path, folders=[], music21_corpus=True, midi_reader=read_notes, workers=1,
                            limit=3, exclude=("airdsAirs",))
    assert summary["files"] == 3 and summary["skipped"] == 0
    names = {s: load_split(tmp_path, s)[0] for s in ("train", "validation", "test")}
    every = sorted(n for ns in names.values() for n in ns)
    assert len(every) == 3 and all(n.startswith("music21:bach/") for n in every)
    for split, ns in names.items():
        assert all(split_of(n) == split for n in ns)  # the split is the piece's own, by its name
        assert summary["splits"][split]["pieces"] == len(ns)
    _, arrays = load_split(tmp_path, "train")
    for a in arrays:  # (pitch, velocity, start_s, end_s): a four-part chorale at the score's dynamics
        assert len(a) > 100 and set(a[:, 1]) == {DEFAULT_VELOCITY} and (a[:, 3] > a[:, 2]).all()
        assert a[:, 0].min() >= 36 and a[:, 0].max() <= 84
    assert json.loads((tmp_path / "manifest.json").read_text())["files"] == 3
