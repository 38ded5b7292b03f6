"""``TrainData`` for music: windows of Performance events (with their controls) cut from note shards.

Training windows are made on the fly: a random piece (weighted by length) and a random start, a random time
stretch (0.95..1.05) and transposition (-3..+3 semitones, as Magenta), encoded to events, with the window's
controls present half of the time and disabled the other half (Magenta's optional conditioning). Evaluation
windows are fixed: each held-out piece encoded once, cut into consecutive windows, no augmentation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from midi_io.notes import Note
from performance_rnn.codecs.controls import CONTROL_DIM, event_controls
from performance_rnn.codecs.performance import (
    PerformanceCodecConfig,
    encode,
    notes_to_events,
)
from performance_rnn.data.build import load_split
from performance_rnn.task import Batch

STRETCHES = (0.95, 0.975, 1.0, 1.025, 1.05)
TRANSPOSITIONS = tuple(range(-3, 4))


@dataclass(frozen=True)
class MusicDataConfig:
    conditioned: bool = True  # emit controls (the model then has control_size = CONTROL_DIM)
    augment: bool = True  # transpose training windows (-3..+3 semitones)
    stretch: bool = True  # and time-stretch them (0.95..1.05); off suits quantized score data better
    segment_s: float = 90.0  # notes taken from a random start: long enough to fill a 512-event window
    control_dropout: float = 0.5  # fraction of training windows whose controls are disabled


def encode_piece(notes: np.ndarray, codec: PerformanceCodecConfig, *, stretch: float = 1.0,
                 transpose: int = 0) -> tuple[list[int], np.ndarray]:
    """(N, 4) notes -> (tokens, controls (T, CONTROL_DIM)); notes pushed out of 0..127 are dropped."""
    pitches = notes[:, 0].astype(int) + transpose
    keep = (pitches >= 0) & (pitches <= 127)
    t0 = float(notes[:, 2].min()) if len(notes) else 0.0
    note_list = [Note(int(p), int(v), (s - t0) * stretch, (e - t0) * stretch)
                 for p, v, s, e in zip(pitches[keep], notes[keep, 1], notes[keep, 2], notes[keep, 3])]
    events = notes_to_events(note_list, codec)
    return encode(events, codec), event_controls(events, codec)


class MusicData:
    """Train/validation/test windows from a dataset folder built by ``perfrnn data``."""

    def __init__(self, data_dir: str | os.PathLike[str], cfg: MusicDataConfig = MusicDataConfig(),
                 codec: PerformanceCodecConfig = PerformanceCodecConfig()) -> None:
        self.cfg = cfg
        self.codec = codec
        self.data_dir = data_dir
        self.names, self.pieces = load_split(data_dir, "train")
        self.durations = np.array([float(p[:, 3].max() - p[:, 2].min()) for p in self.pieces])
        self.weights = self.durations / self.durations.sum()
        self._eval_cache: dict[tuple[str, int], list[tuple[list[int], np.ndarray]]] = {}

    def train_batch(self, batch_size: int, window: int, rng: np.random.Generator) -> Batch:
        rows = [self._train_window(window, rng) for _ in range(batch_size)]
        return _collate(rows, window, self.cfg.conditioned)

    def _train_window(self, window: int, rng: np.random.Generator) -> tuple[list[int], np.ndarray, bool]:
        piece = self.pieces[rng.choice(len(self.pieces), p=self.weights)]
        first, last = float(piece[:, 2].min()), float(piece[:, 2].max())
        start = rng.uniform(first, max(first, last - self.cfg.segment_s / 2))  # leave room to fill the window
        seg = piece[(piece[:, 2] >= start) & (piece[:, 2] < start + self.cfg.segment_s)]
        if not len(seg):
            seg = piece
        stretch = float(rng.choice(STRETCHES)) if self.cfg.augment and self.cfg.stretch else 1.0
        transpose = int(rng.choice(TRANSPOSITIONS)) if self.cfg.augment else 0
        tokens, controls = encode_piece(seg, self.codec, stretch=stretch, transpose=transpose)
        enabled = bool(rng.random() >= self.cfg.control_dropout)
        return tokens[: window + 1], controls[: window + 1], enabled

    def eval_windows(self, split: str, window: int) -> list[tuple[list[int], np.ndarray]]:
        """Each piece of ``split`` encoded once and cut into windows of window+1 tokens overlapping by one,
        so every token but a piece's first is predicted exactly once."""
        key = (split, window)
        if key not in self._eval_cache:
            _, pieces = load_split(self.data_dir, split)
            out = []
            for piece in pieces:
                tokens, controls = encode_piece(piece, self.codec)
                for lo in range(0, max(1, len(tokens) - 1), window):
                    if len(tokens[lo : lo + window + 1]) >= 2:
                        out.append((tokens[lo : lo + window + 1], controls[lo : lo + window + 1]))
            self._eval_cache[key] = out
        return self._eval_cache[key]

    def eval_batches(self, split: str, batch_size: int, window: int, *, conditioned: bool = False) -> Iterator[Batch]:
        """Held-out batches. Controls are disabled unless ``conditioned`` (the figure comparable to baselines)."""
        windows = self.eval_windows(split, window)
        for lo in range(0, len(windows), batch_size):
            rows = [(t, c, conditioned) for t, c in windows[lo : lo + batch_size]]
            yield _collate(rows, window, self.cfg.conditioned)


def _collate(rows: list[tuple[list[int], np.ndarray, bool]], window: int, conditioned: bool) -> Batch:
    """Pad rows to a common length; inputs are tokens[:-1], targets tokens[1:], controls those of targets."""
    length = max(len(t) for t, _, _ in rows) - 1
    b = len(rows)
    inputs = torch.zeros(b, length, dtype=torch.long)
    targets = torch.zeros(b, length, dtype=torch.long)
    mask = torch.zeros(b, length, dtype=torch.bool)
    controls = torch.zeros(b, length, CONTROL_DIM) if conditioned else None
    for i, (tokens, ctrl, enabled) in enumerate(rows):
        n = len(tokens) - 1
        if n <= 0:
            continue
        tok = torch.tensor(tokens, dtype=torch.long)
        inputs[i, :n], targets[i, :n], mask[i, :n] = tok[:-1], tok[1:], True
        if controls is not None:
            if enabled:
                controls[i, :n] = torch.from_numpy(ctrl[1 : n + 1])
            else:
                controls[i, :, 0] = 1.0  # the disable flag; the rest stays zero
    return Batch(inputs, targets, controls, mask)
