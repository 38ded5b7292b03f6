"""``perfrnn text``: Shakespeare-like text from the char-level checkpoint, printed to stdout.

    perfrnn text --prime "ROMEO:" --length 500 --temperature 0.8 --seed 1

prints the primer and its continuation (logs go to stderr). A primer with characters outside the model's
vocabulary is one line on stderr naming them, and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from performance_rnn.errors import PerformanceRNNError
from performance_rnn.tasks.text.defaults import DEFAULTS
from performance_rnn.tasks.text.generate import generate_text, load_text_model

log = logging.getLogger(__name__)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The ``perfrnn text`` flags."""
    ap.add_argument("--checkpoint", default=str(DEFAULTS.checkpoint), help="(default: the shipped one)")
    ap.add_argument("--prime", default="", help="text to continue (echoed); default: start at a line break")
    ap.add_argument("--length", type=int, default=500, help="characters to generate")
    ap.add_argument("--temperature", type=float, default=0.8, help="logits / T; 0 = greedy")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Print the primer and a sampled continuation to stdout; errors -> one line on stderr, status 2."""
    try:
        tm = load_text_model(args.checkpoint)
        log.info("loaded %s (vocab %d)", args.checkpoint, tm.codec.vocab_size)
        text = generate_text(tm, args.prime, args.length, args.temperature, args.top_k, args.top_p, args.seed)
    except (PerformanceRNNError, ValueError) as exc:
        print(f"perfrnn text: error: {exc}", file=sys.stderr)
        return 2
    if hasattr(sys.stdout, "reconfigure"):  # UTF-8 out whatever the locale says (the vocabulary has "—")
        sys.stdout.reconfigure(encoding="utf-8")
    sys.stdout.write(args.prime + text + ("" if text.endswith("\n") else "\n"))
    sys.stdout.flush()
    return 0
