"""``perfrnn eval``: NLL per event of a music checkpoint, and listening figures of its output beside real music.

- With ``--data``: held-out NLL of the split next to unigram and n-gram baselines. The n-gram order is chosen
  on the validation split; every figure is on the same test windows.
- With ``--midi DIR``: NLL of every .mid/.midi file under DIR (recursively, no split), controls disabled.
- With ``--generated N``: N clips of ``--seconds`` sampled from the model and real clips of the same length
  (from ``--midi`` files, else the held-out split of ``--data``) compared figure by figure
  (``performance_rnn.tasks.music.stats``).

A table goes to stdout and, as its last line, every figure as one JSON object (NaN written as null).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from performance_rnn.tasks.music.generate import MusicModel

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "music.pt"
DEFAULT_DATA = "data/music21"
DEFAULT_SPLIT = "test"
DEFAULT_MAX_ORDER = 6
DEFAULT_SECONDS = 30.0
DEFAULT_TEMPERATURE = 1.0
MAX_REAL_CLIPS = 200  # real clips compared with generated ones, taken evenly over all that fit
BATCH_SIZE = 32
MIDI_SUFFIXES = (".mid", ".midi")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--data", default=None, help=f"dataset folder built by perfrnn data (default {DEFAULT_DATA}; "
                   "not with --midi)")
    p.add_argument("--midi", default=None, metavar="DIR",
                   help="score every .mid/.midi file under DIR (recursively, no split) instead of a dataset split")
    p.add_argument("--split", default=None, choices=["validation", "test"],
                   help=f"held-out split of --data (default {DEFAULT_SPLIT})")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--max-order", type=int, default=None,
                   help=f"largest n-gram order tried on validation (default {DEFAULT_MAX_ORDER}; not with --midi)")
    p.add_argument("--generated", type=int, default=0, metavar="N",
                   help="also sample N clips and compare their listening figures with real clips (0 = off)")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"length of generated and real clips (default {DEFAULT_SECONDS:g}; with --generated)")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature of generated clips (default {DEFAULT_TEMPERATURE:g}; with --generated)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--weights", default=None, choices=["float32", "bfloat16", "int8"],
                   help="score through the inference step with weights stored this way, one step at a time (the path "
                        "sampling takes) instead of the training model's forward: the NLL cost of int8 is this "
                        "figure minus the default one")
    p.add_argument("--device", default="cpu")


def check_args(args: argparse.Namespace) -> None:
    """Reject flag combinations that make no sense (ValueError) and fill in the defaults that depend on them."""
    if args.window < 1:
        raise ValueError(f"--window must be >= 1, got {args.window}")
    if args.midi is not None:
        given = [flag for flag, value in (("--data", args.data), ("--split", args.split),
                                          ("--max-order", args.max_order)) if value is not None]
        if given:
            raise ValueError(f"--midi scores whole files with no dataset and no n-gram baselines: drop "
                             f"{', '.join(given)}")
        if not Path(args.midi).is_dir():
            raise ValueError(f"--midi {args.midi}: not a folder")
    else:
        args.data = DEFAULT_DATA if args.data is None else args.data
        args.split = DEFAULT_SPLIT if args.split is None else args.split
        args.max_order = DEFAULT_MAX_ORDER if args.max_order is None else args.max_order
        if args.max_order < 1:
            raise ValueError(f"--max-order must be >= 1, got {args.max_order}")
    if args.generated < 0:
        raise ValueError(f"--generated must be >= 0, got {args.generated}")
    if not args.generated:
        given = [flag for flag, value in (("--seconds", args.seconds), ("--temperature", args.temperature))
                 if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for generated clips; add --generated N")
    args.seconds = DEFAULT_SECONDS if args.seconds is None else args.seconds
    args.temperature = DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
    if not 0 < args.seconds <= 3600:
        raise ValueError(f"--seconds must be in range (0, 3600], got {args.seconds}")


def run(args: argparse.Namespace) -> int:
    from performance_rnn.tasks.music.generate import load_music

    check_args(args)
    t0 = time.monotonic()
    mm = load_music(args.checkpoint, args.device, weights=args.weights or "float32")
    scorer = mm.fast.forward_by_steps if args.weights else mm.model
    if args.midi is not None:
        results, real_pieces = midi_results(mm, args, scorer)
    else:
        results = split_results(mm, args, scorer)
        real_pieces = None
    if args.generated:
        if real_pieces is None:
            from performance_rnn.tasks.music.build import load_split

            real_pieces = load_split(args.data, args.split)[1]
        results["listening"] = listening(mm, real_pieces, args)
        print_listening(results["listening"], args)
    results["wall_s"] = round(time.monotonic() - t0, 1)
    clean = jsonable(results)
    if args.json:
        Path(args.json).write_text(json.dumps(clean, indent=1))
    print(json.dumps(clean))
    return 0


# ---- held-out split of a dataset, with baselines -------------------------------------------------------------


def split_results(mm: MusicModel, args: argparse.Namespace, scorer: Any) -> dict[str, Any]:
    """Model NLL on ``args.split`` of ``args.data`` (controls disabled, and with true controls for a conditioned
    model) next to the unigram and the best-on-validation n-gram; prints the table."""
    import torch

    from performance_rnn.baselines import NGram
    from performance_rnn.codecs.performance import vocab_size
    from performance_rnn.tasks.music.data import MusicData, MusicDataConfig
    from performance_rnn.train import batch_loss

    data = MusicData(args.data, MusicDataConfig(conditioned=mm.conditioned), mm.codec)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split,
                               "scored_by": f"inference step, {args.weights} weights" if args.weights else "model"}

    def model_nll(split: str, conditioned: bool) -> float:
        total, n = 0.0, 0
        with torch.no_grad():
            for batch in data.eval_batches(split, BATCH_SIZE, args.window, conditioned=conditioned):
                nll, k = batch_loss(scorer, mm.head, batch, torch.device(args.device))
                total, n = total + float(nll), n + int(k)
        return total / max(1, n)

    results["model_nll"] = model_nll(args.split, False)
    if mm.conditioned:
        results["model_nll_with_controls"] = model_nll(args.split, True)
    windows = {s: [w for w, _ in data.eval_windows(s, args.window)] for s in ("validation", args.split)}
    results["tokens"] = results["events"] = sum(len(w) - 1 for w in windows[args.split])
    print("fitting n-grams on the training split ...", file=sys.stderr)
    train_seqs = [p.tokens.tolist() for p in data.encoded[data.stretches.index(1.0)]]  # unaugmented, cached
    v = vocab_size(mm.codec)
    lm = NGram(args.max_order, v).fit(train_seqs)  # one fit; each lower order is scored from it
    val_scores = {order: lm.nll(windows["validation"], order) for order in range(1, args.max_order + 1)}
    results["unigram_nll"] = lm.nll(windows[args.split], 1)
    best = min(val_scores, key=val_scores.__getitem__)
    results["ngram_order"] = best
    results["ngram_validation_nll_by_order"] = val_scores
    results["ngram_nll_by_order"] = {order: lm.nll(windows[args.split], order) for order in range(1, args.max_order + 1)}
    results["ngram_nll"] = results["ngram_nll_by_order"][best]
    print(f"{args.split} NLL per event (nats), {results['tokens']} events:")
    print(f"  LSTM, controls disabled   {results['model_nll']:.4f}")
    if mm.conditioned:
        print(f"  LSTM, true controls       {results['model_nll_with_controls']:.4f}")
    print(f"  {best}-gram (best on val.)    {results['ngram_nll']:.4f}")
    print(f"  unigram                   {results['unigram_nll']:.4f}")
    return results


# ---- every MIDI file under a folder --------------------------------------------------------------------------


def midi_files(folder: str | Path) -> list[Path]:
    """Every .mid/.midi file (any letter case) under ``folder``, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def read_pieces(files: Sequence[Path]) -> tuple[list[tuple[Path, np.ndarray]], int]:
    """-> ([(path, (N, 4) pitch, velocity, start_s, end_s of its non-drum notes, sustain applied)], skipped).

    A file that cannot be read, or holds no non-drum note, is skipped with a one-line warning on stderr."""
    from midi_io.errors import MidiIOError
    from midi_io.files import read_notes

    pieces, skipped = [], 0
    for path in files:
        try:
            notes = [n for n in read_notes(path) if not n.is_drum]
        except (MidiIOError, OSError, ValueError) as exc:
            reason = " ".join(str(exc).split()).removeprefix(f"{path}: ")  # MidiDecodeError names the file
            print(f"warning: skipped {path}: {reason}", file=sys.stderr)
            skipped += 1
            continue
        if not notes:
            print(f"warning: skipped {path}: no non-drum notes", file=sys.stderr)
            skipped += 1
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
    from midi_io.notes import Note
    from performance_rnn.codecs.performance import encode, notes_to_events

    note_list = [Note(int(p), int(v), float(s), float(e)) for p, v, s, e in notes]
    return encode(notes_to_events(note_list, mm.codec), mm.codec)


def windows_nll(mm: MusicModel, windows: Iterator[np.ndarray], device: str, scorer: Any) -> tuple[float, int]:
    """-> (summed NLL in nats, number of predicted events) of the windows, controls disabled (a conditioned
    model gets the disable flag, as ``MusicData.eval_batches``)."""
    import torch

    from performance_rnn.tasks.music.data import _collate
    from performance_rnn.train import batch_loss

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


def midi_results(mm: MusicModel, args: argparse.Namespace, scorer: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Model NLL per event over every MIDI file under ``args.midi``; prints the table. -> (results, the pieces'
    notes as (N, 4) arrays, for the listening figures)."""
    files = midi_files(args.midi)
    if not files:
        raise ValueError(f"--midi {args.midi}: no .mid or .midi file in it")
    pieces, skipped = read_pieces(files)
    if not pieces:
        raise ValueError(f"--midi {args.midi}: none of its {len(files)} MIDI files could be read")
    windows = (w for _, notes in pieces for w in token_windows(piece_tokens(notes, mm), args.window))
    total, events = windows_nll(mm, windows, args.device, scorer)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "midi": str(args.midi), "files": len(pieces),
                               "scored_by": f"inference step, {args.weights} weights" if args.weights else "model",
                               "skipped": skipped, "events": events,
                               "model_nll": total / events if events else float("nan")}
    print(f"NLL per event (nats) of {len(pieces)} MIDI files under {args.midi} ({skipped} skipped), "
          f"{events} events:")
    print(f"  LSTM, controls disabled   {results['model_nll']:.4f}")
    return results, [notes for _, notes in pieces]


# ---- listening figures ---------------------------------------------------------------------------------------


def pick_real_clips(pieces: Sequence[np.ndarray], seconds: float, cap: int = MAX_REAL_CLIPS) -> list[list[Any]]:
    """Every piece's clips of ``seconds`` (``music_stats.real_clips``), at most ``cap`` of them taken evenly
    over the whole list (in piece order); only the pieces holding a chosen clip are converted to notes."""
    from midi_io.notes import Note
    from performance_rnn.tasks.music.stats import real_clips

    counts = [int((p[:, 3].max() - p[:, 2].min()) // seconds) if len(p) else 0 for p in pieces]
    total = sum(counts)
    chosen = set(range(total)) if total <= cap else set(np.linspace(0, total - 1, cap).round().astype(int).tolist())
    clips, first = [], 0
    for piece, count in zip(pieces, counts):
        wanted = [i - first for i in range(first, first + count) if i in chosen]
        first += count
        if wanted:
            cut = real_clips([Note(int(p), int(v), float(s), float(e)) for p, v, s, e in piece], seconds)
            clips += [cut[i] for i in wanted if i < len(cut)]
    return clips


def codec_round_trip(notes: Sequence[Any], mm: MusicModel) -> list[Any]:
    """A real clip as the model can play it: through the 10 ms codec and back (times on the model's grid)."""
    from performance_rnn.codecs.performance import events_to_notes, notes_to_events

    return events_to_notes(notes_to_events(notes, mm.codec), mm.codec)


def listening(mm: MusicModel, real_pieces: Sequence[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Median listening figures of ``args.generated`` sampled clips and of up to 200 real clips of the same
    length, and the overlap of their mean pitch-class histograms."""
    from performance_rnn.config import SamplingConfig
    from performance_rnn.tasks.music.generate import generate_performances
    from performance_rnn.tasks.music.stats import SCALAR_KEYS, clip_stats, histogram_overlap, summarize

    real = [codec_round_trip(c, mm) for c in pick_real_clips(real_pieces, args.seconds)]
    if not real:
        raise ValueError(f"no real piece lasts {args.seconds:g} s: nothing to compare with (lower --seconds)")
    guard = mm.codec.max_note_duration_s
    print(f"sampling {args.generated} clips of {args.seconds:g} s ...", file=sys.stderr)
    generated = generate_performances(mm, seconds=args.seconds, seeds=range(args.generated),
                                      sampling=SamplingConfig(temperature=args.temperature))
    gen = summarize([clip_stats(c, args.seconds, guard_s=guard) for c in generated])
    ref = summarize([clip_stats(c, args.seconds, guard_s=guard) for c in real])
    return {"generated": gen, "real": ref, "ratio": {k: ratio(gen[k], ref[k]) for k in SCALAR_KEYS},
            "clips": {"generated": len(generated), "real": len(real)},
            "seconds": args.seconds, "temperature": args.temperature,
            "histogram_overlap": histogram_overlap(gen["pitch_class_hist"], ref["pitch_class_hist"])}


def print_listening(fig: dict[str, Any], args: argparse.Namespace) -> None:
    from performance_rnn.tasks.music.stats import SCALAR_KEYS

    clips = fig["clips"]
    print(f"listening figures, medians over clips of {args.seconds:g} s ({clips['generated']} generated at "
          f"temperature {args.temperature:g}, {clips['real']} real):")
    print(f"  {'figure':<22}{'generated':>10}{'real':>10}{'ratio':>8}")
    for key in SCALAR_KEYS:
        g, r = fig["generated"][key], fig["real"][key]
        print(f"  {key:<22}{g:>10.3f}{r:>10.3f}{ratio(g, r):>8.2f}")
    print(f"  pitch-class histogram overlap {fig['histogram_overlap']:.3f}")


def ratio(generated: float, real: float) -> float:
    """generated / real; NaN when either is NaN or real is 0."""
    return generated / real if real and math.isfinite(generated) and math.isfinite(real) else float("nan")


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
