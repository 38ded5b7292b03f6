"""Shared fixtures: a tiny real MIDI corpus and dataset, a baby music checkpoint, one torch thread, the JACK
server and the dense MIDI maker (the helpers themselves live in the ``testing`` package)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from midi_io.files import write_notes
from midi_io.notes import Note
from testing import jack
from testing.midi import dense_midi

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def jack_server() -> Iterator[jack.JackServer]:
    """A JACK server for the whole session (the running one, or jackd on the dummy backend); skips without one."""
    try:
        server = jack.start_jack()
    except jack.JackUnavailable as exc:
        pytest.skip(f"no JACK server: {exc}")
    yield server
    server.stop()


@pytest.fixture(name="dense_midi")
def dense_midi_fixture() -> Callable[..., bytes]:
    """``dense_midi(n_notes, seconds=20.0, pedal=False)``: a compact .mid of many short notes (testing.midi)."""
    return dense_midi
