"""Held-out figures of a music checkpoint (``perfrnn eval --task music`` prints them): NLL per event on a dataset
split next to unigram and n-gram baselines, NLL of every MIDI file under a folder, and listening figures of
sampled clips beside real ones (``performance_rnn.tasks.music.stats``). Nothing here prints."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midi_io.notes import Note
from performance_rnn.baselines import NGram
from performance_rnn.codecs.performance import encode, events_to_notes, notes_to_events, vocab_size
from performance_rnn.config import SamplingConfig
from performance_rnn.tasks.music.data import MusicData, MusicDataConfig, _collate
from performance_rnn.tasks.music.generate import MusicModel, generate_performances
from performance_rnn.tasks.music.stats import SCALAR_KEYS, clip_stats, histogram_overlap, real_clips, summarize
from performance_rnn.train import batch_loss

MAX_REAL_CLIPS = 200  # real clips compared with generated ones, taken evenly over all that fit
BATCH_SIZE = 32
MIDI_SUFFIXES = (".mid", ".midi")

Scorer = Callable[..., Any]  # the training model's forward, or the inference step's forward_by_steps


# ---- held-out split of a dataset, with baselines -------------------------------------------------------------


def split_nll(mm: MusicModel, data_dir: str | os.PathLike[str], split: str, window: int, max_order: int,
              scorer: Scorer, device: str = "cpu") -> dict[str, Any]:
    """Model NLL on ``split`` of ``data_dir`` (controls disabled, and with true controls for a conditioned model)
    next to the unigram and the n-gram (orders 1..``max_order``, fitted once on the unaugmented training split)
    whose order is best on validation; every figure on the same windows."""
    data = MusicData(data_dir, MusicDataConfig(conditioned=mm.conditioned), mm.codec)
    results: dict[str, Any] = {}

    def model_nll(split: str, conditioned: bool) -> float:
        total, n = 0.0, 0
        with torch.no_grad():
            for batch in data.eval_batches(split, BATCH_SIZE, window, conditioned=conditioned):
                nll, k = batch_loss(scorer, mm.head, batch, torch.device(device))
                total, n = total + float(nll), n + int(k)
        return total / max(1, n)

    results["model_nll"] = model_nll(split, False)
    if mm.conditioned:
        results["model_nll_with_controls"] = model_nll(split, True)
    windows = {s: [w for w, _ in data.eval_windows(s, window)] for s in ("validation", split)}
    results["tokens"] = results["events"] = sum(len(w) - 1 for w in windows[split])
    train_seqs = [p.tokens.tolist() for p in data.encoded[data.stretches.index(1.0)]]  # unaugmented, cached
    lm = NGram(max_order, vocab_size(mm.codec)).fit(train_seqs)  # one fit; each lower order is scored from it
    val_scores = {order: lm.nll(windows["validation"], order) for order in range(1, max_order + 1)}
    results["unigram_nll"] = lm.nll(windows[split], 1)
    best = min(val_scores, key=val_scores.__getitem__)
    results["ngram_order"] = best
    results["ngram_validation_nll_by_order"] = val_scores
    results["ngram_nll_by_order"] = {order: lm.nll(windows[split], order) for order in range(1, max_order + 1)}
    results["ngram_nll"] = results["ngram_nll_by_order"][best]
    return results


# ---- every MIDI file under a folder --------------------------------------------------------------------------


def midi_files(folder: str | Path) -> list[Path]:
    """Every .mid/.midi file (any letter case) under ``folder``, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def read_pieces(files: Sequence[Path]) -> tuple[list[tuple[Path, np.ndarray]], list[tuple[Path, str]]]:
    """-> ([(path, (N, 4) pitch, velocity, start_s, end_s of its non-drum notes, sustain applied)],
    [(path, why) of each file skipped: unreadable, or no non-drum note])."""
    from midi_io.errors import MidiIOError
    from midi_io.files import read_notes

    pieces, skipped = [], []
    for path in files:
        try:
            notes = [n for n in read_notes(path) if not n.is_drum]
        except (MidiIOError, OSError, ValueError) as exc:
            skipped.append((path, " ".join(str(exc).split()).removeprefix(f"{path}: ")))  # the error names the file
            continue
        if not notes:
            skipped.append((path, "no non-drum notes"))
            continue
        pieces.append((path, np.array([(n.pitch, n.velocity, n.start_s, n.end_s) for n in notes], dtype=np.float64)))
    return pieces, skipped


def token_windows(tokens: Sequence[int], window: int) -> Iterator[np.ndarray]:
    """Windows of ``window`` + 1 tokens overlapping by one (as ``MusicData.eval_windows``), so that every token
    but the first is predicted exactly once."""
    arr = np.asarray(tokens, dtype=np.int64)
    for lo in range(0, max(1, len(arr) - 1), window):
        if len(arr[lo : lo + window + 1]) >= 2:
            yield arr[lo : lo + window + 1]


def piece_tokens(notes: np.ndarray, mm: MusicModel) -> list[int]:
    """(N, 4) notes -> token ids, times from 0 of the file (no shift to the first onset)."""
    note_list = [Note(int(p), int(v), float(s), float(e)) for p, v, s, e in notes]
    return encode(notes_to_events(note_list, mm.codec), mm.codec)


def windows_nll(mm: MusicModel, windows: Iterator[np.ndarray], device: str, scorer: Scorer) -> tuple[float, int]:
    """-> (summed NLL in nats, number of predicted events) of the windows, controls disabled (a conditioned
    model gets the disable flag, as ``MusicData.eval_batches``)."""
    total, count = 0.0, 0
    rows: list[tuple[np.ndarray, np.ndarray | None, bool]] = []

    def flush() -> None:
        nonlocal total, count
        with torch.no_grad():
            nll, k = batch_loss(scorer, mm.head, _collate(rows, mm.conditioned), torch.device(device))
        total, count = total + float(nll), count + int(k)
        rows.clear()

    for w in windows:
        rows.append((w, None, False))
        if len(rows) == BATCH_SIZE:
            flush()
    if rows:
        flush()
    return total, count


def midi_nll(mm: MusicModel, pieces: Sequence[tuple[Path, np.ndarray]], window: int, scorer: Scorer,
             device: str = "cpu") -> dict[str, Any]:
    """Model NLL per event over whole pieces (``read_pieces``), controls disabled."""
    windows = (w for _, notes in pieces for w in token_windows(piece_tokens(notes, mm), window))
    total, events = windows_nll(mm, windows, device, scorer)
    return {"files": len(pieces), "events": events, "model_nll": total / events if events else float("nan")}


# ---- listening figures ---------------------------------------------------------------------------------------


def pick_real_clips(pieces: Sequence[np.ndarray], seconds: float, cap: int = MAX_REAL_CLIPS) -> list[list[Any]]:
    """Every piece's clips of ``seconds`` (``stats.real_clips``), at most ``cap`` of them taken evenly over the
    whole list (in piece order); only the pieces holding a chosen clip are converted to notes."""
    counts = [int((p[:, 3].max() - p[:, 2].min()) // seconds) if len(p) else 0 for p in pieces]
    total = sum(counts)
    chosen = set(range(total)) if total <= cap else set(np.linspace(0, total - 1, cap).round().astype(int).tolist())
    clips, first = [], 0
    for piece, count in zip(pieces, counts, strict=True):
        wanted = [i - first for i in range(first, first + count) if i in chosen]
        first += count
        if wanted:
            cut = real_clips([Note(int(p), int(v), float(s), float(e)) for p, v, s, e in piece], seconds)
            clips += [cut[i] for i in wanted if i < len(cut)]
    return clips


def codec_round_trip(notes: Sequence[Any], mm: MusicModel) -> list[Any]:
    """A real clip as the model can play it: through the 10 ms codec and back (times on the model's grid)."""
    return events_to_notes(notes_to_events(notes, mm.codec), mm.codec)


def listening(mm: MusicModel, real_pieces: Sequence[np.ndarray], generated: int, seconds: float,
              temperature: float) -> dict[str, Any]:
    """Median listening figures of ``generated`` sampled clips and of up to 200 real clips of the same length,
    and the overlap of their mean pitch-class histograms. ValueError when no real piece is long enough."""
    real = [codec_round_trip(c, mm) for c in pick_real_clips(real_pieces, seconds)]
    if not real:
        raise ValueError(f"no real piece lasts {seconds:g} s: nothing to compare with (lower --seconds)")
    guard = mm.codec.max_note_duration_s
    clips = generate_performances(mm, seconds=seconds, seeds=range(generated),
                                  sampling=SamplingConfig(temperature=temperature))
    gen = summarize([clip_stats(c, seconds, guard_s=guard) for c in clips])
    ref = summarize([clip_stats(c, seconds, guard_s=guard) for c in real])
    return {"generated": gen, "real": ref, "ratio": {k: ratio(gen[k], ref[k]) for k in SCALAR_KEYS},
            "clips": {"generated": len(clips), "real": len(real)}, "seconds": seconds, "temperature": temperature,
            "histogram_overlap": histogram_overlap(gen["pitch_class_hist"], ref["pitch_class_hist"])}


def ratio(generated: float, real: float) -> float:
    """generated / real; NaN when either is NaN or real is 0."""
    return generated / real if real and math.isfinite(generated) and math.isfinite(real) else float("nan")
