"""Music training data: split by piece folder, cached encodings, windows whose augmentation is consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from midi_io.files import read_notes, write_notes
from midi_io.notes import Note
from performance_rnn.codecs.controls import assemble_controls
from performance_rnn.tasks.music.build import build_dataset, group_of, load_split
from performance_rnn.tasks.music.data import MusicData, MusicDataConfig, encode_compact


def make_piece(seed: int, seconds: float) -> list[Note]:
    rng = np.random.default_rng(seed)
    t, notes = 0.0, []
    while t < seconds:
        pitch = int(rng.integers(48, 84))
        notes.append(Note(pitch, int(rng.integers(30, 120)), t, t + float(rng.uniform(0.05, 0.6))))
        t += float(rng.choice([0.0, 0.012, 0.125, 0.25]))
    return notes


@pytest.fixture(scope="module")
def asap_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Composer/Work/Piece/PERFORMER.mid: 12 pieces, 3 performances each."""
    root = tmp_path_factory.mktemp("asap")
    for piece in range(12):
        folder = root / "Composer" / "Work" / f"piece{piece:02d}"
        folder.mkdir(parents=True)
        for performer in range(3):
            write_notes(make_piece(piece * 10 + performer, seconds=8.0), folder / f"P{performer}.mid")
    return root


def test_group_by_folder_keeps_every_performance_of_a_piece_in_one_split(asap_like: Path, tmp_path: Path) -> None:
    summary = build_dataset(tmp_path, folders=[str(asap_like)], music21_corpus=False, midi_reader=read_notes,
                            workers=1, group_by_folder=True)
    assert summary["split_by"] == "folder"
    seen: dict[str, str] = {}
    for split in ("train", "validation", "test"):
        names, _ = load_split(tmp_path, split)
        for name in names:
            group = group_of(name, [str(asap_like)])
            assert group.startswith("Composer/Work/piece")
            assert seen.setdefault(group, split) == split, f"{group} is in two splits"
    assert len(seen) == 12
    assert json.loads((tmp_path / "manifest.json").read_text())["split_by"] == "folder"


def test_windows_are_slices_of_the_cached_encoding_with_consistent_augmentation(music_dataset: Path) -> None:
    data = MusicData(music_dataset, MusicDataConfig(control_dropout=0.0))
    assert list(Path(music_dataset).glob("encoded-train-*.npz")), "the encoding is cached beside the dataset"
    again = MusicData(music_dataset, MusicDataConfig(control_dropout=0.0))  # from the cache: the same arrays
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(data.encoded[0], again.encoded[0], strict=True))
    rng = np.random.default_rng(3)
    for _ in range(20):
        tokens, controls, enabled = data._train_window(64, rng)
        assert enabled and controls is not None and len(tokens) == len(controls) <= 65
        # the window is one stretch's piece, transposed by k: find k and check ids and histogram agree
        found = False
        for pieces in data.encoded:
            for p in pieces:
                for k in range(-3, 4):
                    shifted = np.where(p.tokens < 256, p.tokens.astype(np.int64) + k, p.tokens)
                    hits = [s for s in range(len(shifted) - len(tokens) + 1)
                            if np.array_equal(shifted[s : s + len(tokens)], tokens)]
                    for s in hits:
                        hist = np.roll(p.histogram[s : s + len(tokens)].astype(np.float32), k, axis=1)
                        if np.allclose(assemble_controls(p.density[s : s + len(tokens)], hist), controls):
                            found = True
        assert found


def test_transposed_encoding_matches_encoding_transposed_notes(music_dataset: Path) -> None:
    _, pieces = load_split(music_dataset, "train")
    a = encode_compact(pieces[0], MusicData(music_dataset).codec, transpose=2)
    b = encode_compact(pieces[0], MusicData(music_dataset).codec)
    assert np.array_equal(a.tokens, np.where(b.tokens < 256, b.tokens + 2, b.tokens))
    assert np.allclose(a.histogram.astype(np.float32), np.roll(b.histogram.astype(np.float32), 2, axis=1), atol=1e-3)
