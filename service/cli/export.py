"""``perfrnn export``: turn a training checkpoint (runs/.../last.pt) into a small shippable one (fp16)."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="training checkpoint, e.g. runs/music/last.pt")
    p.add_argument("dest", help="e.g. checkpoints/music.pt")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16 storage)")


def run(args: argparse.Namespace) -> int:
    from performance_rnn.checkpoint import export

    out = export(args.source, args.dest, half=not args.fp32)
    print(f"wrote {args.dest} ({os.path.getsize(args.dest) / 1e6:.1f} MB, kind {out['kind']}, "
          f"step {out['train_state'].get('step')})")
    return 0
