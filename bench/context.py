"""How far back the music model looks: held-out NLL of the next 64 events given only the last W events of context
versus everything before them. It justifies priming with a primer's last ``PRIME_WINDOW`` events.

    python -m bench.context [--data data/asap] [--positions 3] [--out bench/results/context.json]

For each test-split piece of at least 1,200 events, ``--positions`` random positions p >= 600 (seeded); at each,
the mean NLL of events p..p+63 (teacher forcing, through the inference step ``perfrnn`` uses) with context from the
piece's start (the baseline, measured in the same run) and from p - W, for each W.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from performance_rnn.codecs.controls import control_vector
from performance_rnn.tasks.music.build import load_split
from performance_rnn.tasks.music.data import MusicData, MusicDataConfig
from performance_rnn.tasks.music.generate import PRIME_WINDOW, load_music

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = (64, 128, 256, 512)
TARGET = 64


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints/music.pt")
    ap.add_argument("--data", type=Path, default=ROOT / "data/asap")
    ap.add_argument("--positions", type=int, default=3, help="positions per piece")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/context.json")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    mm = load_music(args.checkpoint)
    data = MusicData(args.data, MusicDataConfig(conditioned=mm.conditioned), mm.codec)
    _, pieces = load_split(args.data, "test")
    encoded = data._encoded("test", pieces, (1.0,))[0]
    ctrl = torch.from_numpy(control_vector(None, None)).float() if mm.conditioned else None
    rng = np.random.default_rng(0)
    nll: dict[str, list[float]] = {"all": [], **{str(w): [] for w in WINDOWS}}
    for enc in encoded:
        tokens = torch.from_numpy(enc.tokens.astype(np.int64))
        if len(tokens) < 1200:
            continue
        for p in rng.choice(np.arange(600, len(tokens) - TARGET - 1), size=args.positions, replace=False):
            target = tokens[p : p + TARGET]

            def score(
                start: int, tokens: torch.Tensor = tokens, p: int = int(p), target: torch.Tensor = target
            ) -> float:
                x = tokens[start : p + TARGET - 1].unsqueeze(0)
                c = None if ctrl is None else ctrl.expand(1, x.shape[1], -1)
                out, _ = mm.fast.forward(x, None, c)
                logp = torch.log_softmax(out[0, -TARGET:], -1)
                return float(-logp.gather(1, target.unsqueeze(1)).mean())

            nll["all"].append(score(0))
            for w in WINDOWS:
                nll[str(w)].append(score(int(p) - w))
    base = np.array(nll["all"])
    result = {"checkpoint": args.checkpoint.name, "weights": mm.weights, "positions": len(base),
              "nll_all_context": float(base.mean()), "prime_window": PRIME_WINDOW,
              "by_window": {w: {"nll": float(np.mean(nll[str(w)])),
                                "minus_all_context": float(np.mean(np.array(nll[str(w)]) - base))} for w in WINDOWS},
              "wall_s": round(time.monotonic() - t0, 1)}
    print(f"{len(base)} positions; NLL of the next {TARGET} events, nats/event")
    print(f"  all context before (600+ events)  {base.mean():.4f}")
    for w, d in result["by_window"].items():
        print(f"  last {w:>3} events                   {d['nll']:.4f} ({d['minus_all_context']:+.4f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
