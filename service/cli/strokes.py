"""``perfrnn strokes``: a grid of kanji-like pen drawings from the stroke checkpoint, as SVG or PNG.

    perfrnn strokes -o out.svg --temperature 0.4 --seed 1 [--partial start.json]

``--partial`` is a JSON list of stroke-3 rows ``[[dx, dy, p], ...]`` in KanjiVG units (see
``performance_rnn.tasks.strokes.generate``); every sample continues it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from performance_rnn.codecs.strokes import grid_svg
from performance_rnn.errors import CodecError, PerformanceRNNError
from performance_rnn.tasks.strokes.defaults import DEFAULTS
from performance_rnn.tasks.strokes.generate import generate_strokes, load_stroke_model, render_png

log = logging.getLogger(__name__)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The ``perfrnn strokes`` flags."""
    ap.add_argument("-o", "--output", default="strokes.svg", help=".svg or .png; '-' writes SVG to stdout")
    ap.add_argument("--force", action="store_true",
                    help="write into an existing device/FIFO or through a symbolic link instead of refusing")
    ap.add_argument("--checkpoint", default=str(DEFAULTS.checkpoint), help="(default: the shipped one)")
    ap.add_argument("-n", "--num", type=int, default=16, help="drawings in the grid")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--partial", default=None, help="JSON file with a stroke-3 drawing to continue")
    ap.add_argument("--json", default=None, help="also write the drawings as JSON stroke-3 here")
    ap.add_argument("--fit", action="store_true", help="fit each drawing to its cell instead of the 109 canvas")


def run(args: argparse.Namespace) -> int:
    """Sample a grid of drawings and write it as SVG (or PNG by the file's suffix); errors -> status 2."""
    from midi_io.output import check_output, output_format, write_bytes, write_with  # stdlib only

    try:
        fmt = "svg"
        if args.output != "-":  # the output is checked before any work (OutputRefused is a ValueError)
            fmt = output_format(args.output, ("svg", "png"))
            check_output(args.output, force=args.force)
        partial = None
        if args.partial:
            try:
                partial = json.loads(Path(args.partial).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise CodecError(f"{args.partial}: cannot read a JSON stroke-3 drawing: {exc}") from exc
        sm = load_stroke_model(args.checkpoint)
        drawings = generate_strokes(sm, args.num, args.temperature, args.seed, partial)
        box = None if args.fit else sm.canvas
        if args.output == "-":
            sys.stdout.write(grid_svg(drawings, args.cols, box=box))
        elif fmt == "png":
            write_with(args.output, lambda tmp: render_png(drawings, tmp, args.cols, box=box), force=args.force)
        else:
            write_bytes(args.output, grid_svg(drawings, args.cols, box=box).encode("utf-8"), force=args.force)
        if args.json:
            rows = [np.round(d.astype(np.float64), 2).tolist() for d in drawings]
            write_bytes(args.json, json.dumps(rows).encode("utf-8"), force=args.force)
    except (PerformanceRNNError, ValueError) as exc:
        print(f"perfrnn strokes: error: {exc}", file=sys.stderr)
        return 2
    lengths = [len(d) for d in drawings]
    log.info("wrote %d drawings (%d..%d points) to %s", len(drawings), min(lengths), max(lengths), args.output)
    return 0
