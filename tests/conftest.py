"""Shared fixtures: a tiny real MIDI corpus and dataset, a baby music checkpoint, seeded generators."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

from midi_io.files import write_notes
from midi_io.notes import Note

ROOT = Path(__file__).resolve().parents[1]


def _register_audio_check() -> None:
    """tests/audio_check.py as the module ``perfrnn_tests_audio`` (by path, once, before any test module is
    collected: an installed package, Hershey-Fonts, owns the top-level name "tests")."""
    spec = importlib.util.spec_from_file_location("perfrnn_tests_audio", Path(__file__).parent / "audio_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_register_audio_check()


def make_piece(seed: int, seconds: float = 30.0) -> list[Note]:
    """A small polyphonic piece: a random walk melody over held chords, with varying velocity."""
    rng = random.Random(seed)
    notes, t, pitch = [], 0.0, 60 + rng.randrange(-5, 6)
    while t < seconds:
        dur = rng.choice([0.125, 0.25, 0.25, 0.5])
        pitch = min(96, max(48, pitch + rng.choice([-2, -1, 1, 2, 3, -3])))
        notes.append(Note(pitch, rng.randrange(50, 110), t, t + dur))
        if rng.random() < 0.25:
            root = pitch - 12
            for off in (0, 4, 7):
                notes.append(Note(root + off, 60, t, t + 1.0))
        t += dur
    return notes


@pytest.fixture(scope="session")
def midi_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("midi")
    for i in range(24):
        write_notes(make_piece(i), folder / f"piece{i:02d}.mid")
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")  # truncated: must be skipped
    return folder


@pytest.fixture(scope="session")
def music_dataset(midi_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from midi_io.files import read_notes
    from performance_rnn.tasks.music.build import build_dataset

    out = tmp_path_factory.mktemp("dataset")
    build_dataset(out, folders=[str(midi_folder)], music21_corpus=False, midi_reader=read_notes, workers=1)
    return out


@pytest.fixture(scope="session")
def baby_checkpoint(music_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditioned 1x32 music model trained for a few steps (enough to load and sample, not to be good)."""
    from service.cli import main

    run = tmp_path_factory.mktemp("run")
    rc = main(["train", "--data", str(music_dataset), "--run-dir", str(run), "--steps", "3", "--layers", "1",
               "--hidden", "32", "--batch-size", "4", "--window", "64", "--eval-every", "3", "--eval-batches", "1",
               "--threads", "1"])
    assert rc == 0
    return run / "last.pt"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tests run tiny models: one intra-op thread avoids oversubscribing CI's two cores."""
    import torch

    torch.set_num_threads(1)
