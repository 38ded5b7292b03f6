"""``perfrnn eval --task music|text|strokes``: held-out figures of checkpoints (the library code is in
``performance_rnn/tasks/<task>/evaluate.py``). Every flag left out takes the task's default; a flag the task has
no use for is an error.

Music (one checkpoint; the default task):

- With ``--data`` (default: the task's data location): held-out NLL of the split next to unigram and n-gram
  baselines. The n-gram order is chosen on the validation split; every figure is on the same test windows.
- With ``--midi DIR``: NLL of every .mid/.midi file under DIR (recursively, no split), controls disabled.
- With ``--generated N``: N clips of ``--seconds`` sampled from the model and real clips of the same length
  (from ``--midi`` files, else the held-out split of ``--data``) compared figure by figure
  (``performance_rnn.tasks.music.stats``).

Text (one or more checkpoints): NLL per character of the split's plays, state carried through each play, and the
n-gram baseline over characters (order chosen on validation; ``--no-baseline`` skips it).
Strokes (one or more checkpoints): NLL per point on the split's characters, offsets and pen apart.

A table goes to stdout and, as its last line, every figure as one JSON object (NaN written as null).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from performance_rnn.baselines import DEFAULT_MAX_ORDER
from performance_rnn.tasks import TASKS, get_task

if TYPE_CHECKING:
    from performance_rnn.tasks.music.generate import MusicModel

DEFAULT_SPLIT = "test"
DEFAULT_WINDOW = 512
DEFAULT_SECONDS = 30.0
DEFAULT_TEMPERATURE = 1.0
MUSIC_ONLY = ("midi", "window", "generated", "seconds", "temperature", "weights")
TASK_FLAGS = {"music": {*MUSIC_ONLY, "max_order"}, "text": {"no_baseline", "max_order"}, "strokes": set()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=TASKS, default="music")
    p.add_argument("--checkpoint", nargs="+", default=None, metavar="CHECKPOINT",
                   help="default: the task's shipped checkpoint; text and strokes take several")
    p.add_argument("--data", default=None, help="data location (default: the task's; music: a dataset folder built "
                   "by perfrnn data, not with --midi; text: a folder of .md plays; strokes: the KanjiVG cache file)")
    p.add_argument("--midi", default=None, metavar="DIR",
                   help="music: score every .mid/.midi file under DIR (recursively, no split) instead of a split")
    p.add_argument("--split", default=None, choices=["validation", "test"],
                   help=f"held-out split (default {DEFAULT_SPLIT})")
    p.add_argument("--window", type=int, default=None, help=f"music: events per window (default {DEFAULT_WINDOW})")
    p.add_argument("--max-order", type=int, default=None,
                   help=f"music, text: largest n-gram order tried on validation (default {DEFAULT_MAX_ORDER}; "
                        "not with --midi)")
    p.add_argument("--no-baseline", action="store_true", help="text: skip the n-gram baseline")
    p.add_argument("--generated", type=int, default=None, metavar="N",
                   help="music: also sample N clips and compare their listening figures with real clips (0 = off)")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"length of generated and real clips (default {DEFAULT_SECONDS:g}; with --generated)")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature of generated clips (default {DEFAULT_TEMPERATURE:g}; with --generated)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--weights", default=None, choices=["float32", "bfloat16", "int8"],
                   help="music: score through the inference step with weights stored this way, one step at a time "
                        "(the path sampling takes) instead of the training model's forward: the NLL cost of int8 is "
                        "this figure minus the default one")
    p.add_argument("--device", default="cpu")


def check_args(args: argparse.Namespace) -> None:
    """Reject flag combinations that make no sense (ValueError) and fill in the defaults that depend on them."""
    task = get_task(args.task).defaults
    stray = [n for n in (*MUSIC_ONLY, "no_baseline", "max_order")
             if getattr(args, n) is not None and getattr(args, n) is not False and n not in TASK_FLAGS[task.name]]
    if stray:
        names = ", ".join("--" + n.replace("_", "-") for n in stray)
        raise ValueError(f"{names}: not a flag of --task {task.name}")
    args.checkpoint = [str(task.checkpoint)] if args.checkpoint is None else args.checkpoint
    if task.name != "music":
        args.split = DEFAULT_SPLIT if args.split is None else args.split
        args.data = task.data if args.data is None else args.data
        return
    if len(args.checkpoint) != 1:
        raise ValueError("--task music evaluates one checkpoint at a time")
    args.checkpoint = args.checkpoint[0]
    args.window = DEFAULT_WINDOW if args.window is None else args.window
    args.generated = 0 if args.generated is None else args.generated
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
        args.data = str(task.data) if args.data is None else args.data
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


def run_sibling(args: argparse.Namespace) -> dict[str, Any]:
    """``--task text`` or ``strokes``: the library's figures, and a table on stdout."""
    if args.task == "text":
        from performance_rnn.tasks.text import evaluate as text_eval

        if args.max_order is not None and args.max_order < 1:
            raise ValueError(f"--max-order must be >= 1, got {args.max_order}")
        order = None if args.no_baseline else args.max_order or DEFAULT_MAX_ORDER
        if order is not None:
            print("fitting n-grams on the training plays ...", file=sys.stderr)
        res = text_eval.evaluate(args.checkpoint, args.data, args.split, order, args.device)
        print(f"{args.split} plays, NLL per character, {res['chars']} characters:  nats   bits")
        for path, fig in res["checkpoints"].items():
            print(f"  {path:<40}{fig['nats_per_char']:>8.4f}{fig['bits_per_char']:>7.4f}")
        if order is not None:
            print(f"  {res['ngram_order']}-gram (best on val.){'':<23}{res['ngram_nats_per_char']:>8.4f}"
                  f"{res['ngram_bits_per_char']:>7.4f}")
        return res
    from performance_rnn.tasks.strokes.evaluate import evaluate as strokes_eval

    res = strokes_eval(args.checkpoint, args.data, args.split, args.device)
    print(f"{args.split} characters, NLL per point (nats):    all  offsets    pen")
    for path, fig in res["checkpoints"].items():
        print(f"  {path:<40}{fig['nll_per_point']:>7.3f}{fig['offset_nll_per_point']:>9.3f}"
              f"{fig['pen_nll_per_point']:>7.3f}")
    return res


def run(args: argparse.Namespace) -> int:
    from performance_rnn.tasks.music.generate import load_music

    check_args(args)
    t0 = time.monotonic()
    if args.task != "music":
        return _write(run_sibling(args), args, t0)
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
    return _write(results, args, t0)


def _write(results: dict[str, Any], args: argparse.Namespace, t0: float) -> int:
    """The figures as the last line of stdout (and to ``--json``)."""
    results["wall_s"] = round(time.monotonic() - t0, 1)
    clean = jsonable(results)
    if args.json:
        Path(args.json).write_text(json.dumps(clean, indent=1))
    print(json.dumps(clean))
    return 0


# ---- music: the library's figures, and their tables -----------------------------------------------------------


def split_results(mm: MusicModel, args: argparse.Namespace, scorer: Any) -> dict[str, Any]:
    """Model NLL on ``args.split`` of ``args.data`` next to the unigram and the best-on-validation n-gram."""
    from performance_rnn.tasks.music.evaluate import split_nll

    print("fitting n-grams on the training split ...", file=sys.stderr)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split,
                               "scored_by": f"inference step, {args.weights} weights" if args.weights else "model"}
    results.update(split_nll(mm, args.data, args.split, args.window, args.max_order, scorer, args.device))
    print(f"{args.split} NLL per event (nats), {results['tokens']} events:")
    print(f"  LSTM, controls disabled   {results['model_nll']:.4f}")
    if mm.conditioned:
        print(f"  LSTM, true controls       {results['model_nll_with_controls']:.4f}")
    print(f"  {results['ngram_order']}-gram (best on val.)    {results['ngram_nll']:.4f}")
    print(f"  unigram                   {results['unigram_nll']:.4f}")
    return results


def midi_results(mm: MusicModel, args: argparse.Namespace, scorer: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Model NLL per event over every MIDI file under ``args.midi`` (a warning line per file skipped). -> (results,
    the pieces' notes as (N, 4) arrays, for the listening figures)."""
    from performance_rnn.tasks.music.evaluate import midi_files, midi_nll, read_pieces

    files = midi_files(args.midi)
    if not files:
        raise ValueError(f"--midi {args.midi}: no .mid or .midi file in it")
    pieces, skipped = read_pieces(files)
    for path, why in skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    if not pieces:
        raise ValueError(f"--midi {args.midi}: none of its {len(files)} MIDI files could be read")
    fig = midi_nll(mm, pieces, args.window, scorer, args.device)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "midi": str(args.midi), "files": fig["files"],
                               "scored_by": f"inference step, {args.weights} weights" if args.weights else "model",
                               "skipped": len(skipped), "events": fig["events"], "model_nll": fig["model_nll"]}
    print(f"NLL per event (nats) of {len(pieces)} MIDI files under {args.midi} ({len(skipped)} skipped), "
          f"{fig['events']} events:")
    print(f"  LSTM, controls disabled   {results['model_nll']:.4f}")
    return results, [notes for _, notes in pieces]


def listening(mm: MusicModel, real_pieces: Sequence[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    from performance_rnn.tasks.music.evaluate import listening as figures

    print(f"sampling {args.generated} clips of {args.seconds:g} s ...", file=sys.stderr)
    return figures(mm, real_pieces, args.generated, args.seconds, args.temperature)


def print_listening(fig: dict[str, Any], args: argparse.Namespace) -> None:
    from performance_rnn.tasks.music.evaluate import ratio
    from performance_rnn.tasks.music.stats import SCALAR_KEYS

    clips = fig["clips"]
    print(f"listening figures, medians over clips of {args.seconds:g} s ({clips['generated']} generated at "
          f"temperature {args.temperature:g}, {clips['real']} real):")
    print(f"  {'figure':<22}{'generated':>10}{'real':>10}{'ratio':>8}")
    for key in SCALAR_KEYS:
        g, r = fig["generated"][key], fig["real"][key]
        print(f"  {key:<22}{g:>10.3f}{r:>10.3f}{ratio(g, r):>8.2f}")
    print(f"  pitch-class histogram overlap {fig['histogram_overlap']:.3f}")


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
