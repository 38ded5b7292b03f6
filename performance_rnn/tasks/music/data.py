"""``TrainData`` for music: windows of Performance events (with their controls) cut from note shards.

Every training piece is encoded once per time stretch (Magenta's 0.95..1.05) into token ids and compact
controls (density bin + pitch-class histogram), kept in memory and cached on disk beside the dataset, so a
training batch is a few array slices: a random piece (weighted by length), a random start, a random stretch
and a transposition (-3..+3 semitones, as Magenta; applied to the ids and the histogram), with the
window's controls present half of the time and disabled the other half (Magenta's optional conditioning).
Evaluation windows are fixed: each held-out piece encoded once, cut into consecutive windows, no augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midi_io.notes import Note
from performance_rnn.batches import Batch
from performance_rnn.codecs.controls import CONTROL_DIM, assemble_controls, event_control_parts
from performance_rnn.codecs.performance import (
    PerformanceCodecConfig,
    encode,
    notes_to_events,
    token_layout,
    vocab_size,
)
from performance_rnn.config import ModelConfig
from performance_rnn.errors import DataError
from performance_rnn.heads import CategoricalHead
from performance_rnn.tasks import ModelSize, TrainSetup
from performance_rnn.tasks.music.build import load_split

STRETCHES = (0.95, 0.975, 1.0, 1.025, 1.05)
TRANSPOSITIONS = tuple(range(-3, 4))


@dataclass(frozen=True)
class MusicDataConfig:
    conditioned: bool = True  # emit controls (the model then has control_size = CONTROL_DIM)
    augment: bool = True  # transpose training windows (-3..+3 semitones)
    stretch: bool = True  # and time-stretch them (0.95..1.05); off suits quantized score data better
    control_dropout: float = 0.5  # fraction of training windows whose controls are disabled


@dataclass(frozen=True)
class EncodedPiece:
    tokens: np.ndarray  # (T,) int16 ids
    density: np.ndarray  # (T,) int8 density bins
    histogram: np.ndarray  # (T, 12) float16 pitch-class histograms
    low: int  # lowest and highest pitch, to keep transpositions on the keyboard
    high: int


def encode_piece(notes: np.ndarray, codec: PerformanceCodecConfig, *, stretch: float = 1.0,
                 transpose: int = 0) -> tuple[list[int], np.ndarray]:
    """(N, 4) notes -> (tokens, controls (T, CONTROL_DIM)); notes pushed out of 0..127 are dropped."""
    piece = encode_compact(notes, codec, stretch=stretch, transpose=transpose)
    return piece.tokens.astype(np.int64).tolist(), assemble_controls(piece.density, piece.histogram)


def encode_compact(notes: np.ndarray, codec: PerformanceCodecConfig, *, stretch: float = 1.0,
                   transpose: int = 0) -> EncodedPiece:
    """(N, 4) notes (pitch, velocity, start_s, end_s, in file order) -> an ``EncodedPiece``. Times are taken
    from the piece's first onset; stretch multiplies them before quantization (as Magenta's augmentation)."""
    pitches = notes[:, 0].astype(int) + transpose
    keep = (pitches >= 0) & (pitches <= 127)
    t0 = float(notes[:, 2].min()) if len(notes) else 0.0
    note_list = [Note(int(p), int(v), (s - t0) * stretch, (e - t0) * stretch)
                 for p, v, s, e in zip(pitches[keep], notes[keep, 1], notes[keep, 2], notes[keep, 3], strict=True)]
    events = notes_to_events(note_list, codec)
    dens, hist = event_control_parts(events, codec)
    kept = pitches[keep]
    return EncodedPiece(np.asarray(encode(events, codec), dtype=np.int16), dens, hist.astype(np.float16),
                        int(kept.min()) if len(kept) else 60, int(kept.max()) if len(kept) else 60)


def _encode_all(args: tuple[np.ndarray, float, PerformanceCodecConfig]) -> EncodedPiece:
    notes, stretch, codec = args
    return encode_compact(notes, codec, stretch=stretch)


class MusicData:
    """Train/validation/test windows from a dataset folder built by ``perfrnn data``."""

    def __init__(self, data_dir: str | os.PathLike[str], cfg: MusicDataConfig = MusicDataConfig(),
                 codec: PerformanceCodecConfig | None = None, *, workers: int = 1) -> None:
        self.cfg = cfg
        self.codec = PerformanceCodecConfig() if codec is None else codec
        self.data_dir = data_dir
        self.workers = workers
        self.names, self.pieces = load_split(data_dir, "train")
        self.stretches = STRETCHES if cfg.augment and cfg.stretch else (1.0,)
        self.encoded = self._encoded("train", self.pieces, self.stretches)  # [stretch][piece]
        lengths = np.array([len(p.tokens) for p in self.encoded[self.stretches.index(1.0)]], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self._eval_cache: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def _encoded(self, split: str, pieces: list[np.ndarray], stretches: tuple[float, ...]) -> list[list[EncodedPiece]]:
        """Every piece encoded at every stretch, from the on-disk cache when the notes and codec match."""
        if not pieces:
            return [[] for _ in stretches]
        h = hashlib.sha1(json.dumps([asdict(self.codec), list(stretches), split]).encode())
        for p in pieces:
            h.update(p.tobytes())
        path = Path(self.data_dir) / f"encoded-{split}-{h.hexdigest()[:12]}.npz"
        if path.exists():
            with np.load(path) as z:
                return _unpack(z, len(stretches), len(pieces))
        jobs = [(p, s, self.codec) for s in stretches for p in pieces]
        if self.workers > 1 and len(jobs) >= 256:  # spawn: forking a process that runs torch threads can hang
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(self.workers) as pool:
                flat = pool.map(_encode_all, jobs, chunksize=8)
        else:
            flat = [_encode_all(j) for j in jobs]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, tokens=np.concatenate([e.tokens for e in flat]),
                 density=np.concatenate([e.density for e in flat]),
                 histogram=np.concatenate([e.histogram for e in flat]),
                 lengths=np.array([len(e.tokens) for e in flat]),
                 range=np.array([(e.low, e.high) for e in flat]))
        os.replace(tmp, path)
        return [flat[i * len(pieces) : (i + 1) * len(pieces)] for i in range(len(stretches))]

    def train_batch(self, batch_size: int, window: int, rng: np.random.Generator) -> Batch:
        rows = [self._train_window(window, rng) for _ in range(batch_size)]
        return _collate(rows, self.cfg.conditioned)

    def _train_window(self, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, bool]:
        k = int(rng.choice(len(self.pieces), p=self.weights))
        piece = self.encoded[int(rng.integers(len(self.stretches)))][k]
        start = int(rng.integers(0, max(1, len(piece.tokens) - window)))
        tokens = piece.tokens[start : start + window + 1].astype(np.int64)
        shift = 0
        if self.cfg.augment:
            shift = int(rng.choice(TRANSPOSITIONS))
            if not (piece.low + shift >= 0 and piece.high + shift <= 127):
                shift = 0
        if shift:  # NOTE_ON and NOTE_OFF ids move with the pitch; the rest stay
            on, off = token_layout(self.codec).note_on, token_layout(self.codec).note_off
            notes = ((tokens >= on.start) & (tokens < on.stop)) | ((tokens >= off.start) & (tokens < off.stop))
            tokens = np.where(notes, tokens + shift, tokens)
        enabled = bool(rng.random() >= self.cfg.control_dropout)
        controls = None
        if self.cfg.conditioned and enabled:
            hist = np.roll(piece.histogram[start : start + window + 1].astype(np.float32), shift, axis=1)
            controls = assemble_controls(piece.density[start : start + window + 1], hist)
        return tokens, controls, enabled

    def eval_windows(self, split: str, window: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each piece of ``split`` encoded once and cut into windows of window+1 tokens overlapping by one,
        so every token but a piece's first is predicted exactly once."""
        key = (split, window)
        if key not in self._eval_cache:
            _, pieces = load_split(self.data_dir, split)
            out = []
            for enc in self._encoded(split, pieces, (1.0,))[0]:
                tokens = enc.tokens.astype(np.int64)
                for lo in range(0, max(1, len(tokens) - 1), window):
                    if len(tokens[lo : lo + window + 1]) >= 2:
                        out.append((tokens[lo : lo + window + 1],
                                    assemble_controls(enc.density[lo : lo + window + 1],
                                                      enc.histogram[lo : lo + window + 1].astype(np.float32))))
            self._eval_cache[key] = out
        return self._eval_cache[key]

    def eval_batches(self, split: str, batch_size: int, window: int, *, conditioned: bool = False) -> Iterator[Batch]:
        """Held-out batches. Controls are disabled unless ``conditioned`` (the figure comparable to baselines)."""
        windows = self.eval_windows(split, window)
        for lo in range(0, len(windows), batch_size):
            rows = [(t, c if conditioned else None, conditioned) for t, c in windows[lo : lo + batch_size]]
            yield _collate(rows, self.cfg.conditioned)


def _unpack(z: np.lib.npyio.NpzFile, n_stretch: int, n_pieces: int) -> list[list[EncodedPiece]]:
    ends = np.cumsum(z["lengths"])
    starts = ends - z["lengths"]
    tokens, density, histogram, ranges = z["tokens"], z["density"], z["histogram"], z["range"]
    flat = [EncodedPiece(tokens[a:b], density[a:b], histogram[a:b], int(lo), int(hi))
            for a, b, (lo, hi) in zip(starts, ends, ranges, strict=True)]
    return [flat[i * n_pieces : (i + 1) * n_pieces] for i in range(n_stretch)]


def _collate(rows: list[tuple[np.ndarray, np.ndarray | None, bool]], conditioned: bool) -> Batch:
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
        tok = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        inputs[i, :n], targets[i, :n], mask[i, :n] = tok[:-1], tok[1:], True
        if controls is not None:
            if enabled and ctrl is not None:
                controls[i, :n] = torch.from_numpy(ctrl[1 : n + 1])
            else:
                controls[i, :, 0] = 1.0  # the disable flag; the rest stays zero
    return Batch(inputs, targets, controls, mask)


def training_setup(data: Path | None, size: ModelSize, options: Mapping[str, Any]) -> TrainSetup:
    """The dataset folder ``data`` (built by ``perfrnn data``), conditioned and augmented unless ``options`` say
    ``no_controls`` / ``no_augment`` / ``no_stretch``; a ``size`` LSTM over the Performance vocabulary."""
    if data is None:
        raise DataError("music trains on a dataset folder built by perfrnn data (--data DIR)")
    codec = PerformanceCodecConfig()
    cfg = MusicDataConfig(conditioned=not options.get("no_controls", False),
                          augment=not options.get("no_augment", False), stretch=not options.get("no_stretch", False))
    music = MusicData(data, cfg, codec, workers=2)
    v = vocab_size(codec)
    config = ModelConfig(input_size=v, embed_size=size.embed, hidden_size=size.hidden, num_layers=size.layers,
                         control_size=CONTROL_DIM if cfg.conditioned else 0, output_size=v, dropout=size.dropout)
    manifest = Path(data) / "manifest.json"
    summary = json.loads(manifest.read_text()).get("splits") if manifest.exists() else None
    extra = {"data": {"dir": str(data), "config": asdict(cfg), "summary": summary}}
    return TrainSetup(music, config, CategoricalHead(v), {"name": "performance", **asdict(codec)}, extra)
