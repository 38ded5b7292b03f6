"""Training-speed benchmark: the project's training step (windows from a built dataset, the model, the head,
the loss, backward, clipping, Adam) against a bare ``nn.LSTM`` forward + backward + Adam of the same shapes on
random tokens, measured in the same run, per precision. Prints a table and writes JSON.

    python -m bench.train --data data/asap [--layers 3 --hidden 512 --batch-size 32 --window 256]
                          [--steps 8] [--threads 2] [--amp none,bf16] [--out bench/results/train.json]

The criterion is tokens/s (scored target tokens per second of wall time, batch preparation included for the
project loop) and the ratio project / bare, which the music issue asks to be >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from performance_rnn.codecs.controls import CONTROL_DIM
from performance_rnn.config import ModelConfig
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.music.data import MusicData, MusicDataConfig
from performance_rnn.train import batch_loss

V = 388


def _time(step: Any, steps: int, tokens_per_step: int) -> float:
    step()  # warm-up (allocations, oneDNN primitive creation)
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return tokens_per_step * steps / (time.perf_counter() - t0)


def project_step(data: MusicData, args: argparse.Namespace, amp: str) -> Any:
    model = RecurrentModel(ModelConfig(input_size=V, hidden_size=args.hidden, num_layers=args.layers,
                                       control_size=CONTROL_DIM, output_size=V)).train()
    head = CategoricalHead(V)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    device = torch.device("cpu")

    def step() -> None:
        batch = data.train_batch(args.batch_size, args.window, rng)
        nll, n = batch_loss(model, head, batch, device, amp)
        opt.zero_grad(set_to_none=True)
        (nll / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()

    return step


def bare_step(args: argparse.Namespace, amp: str) -> Any:
    lstm = nn.LSTM(V + CONTROL_DIM, args.hidden, args.layers, batch_first=True)
    out = nn.Linear(args.hidden, V)
    params = list(lstm.parameters()) + list(out.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (args.batch_size, args.window), generator=g)
    y = torch.randint(0, V, (args.batch_size, args.window), generator=g)
    c = torch.zeros(args.batch_size, args.window, CONTROL_DIM)

    def step() -> None:
        inp = torch.cat([nn.functional.one_hot(x, V).float(), c], -1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            h, _ = lstm(inp)
            logits = out(h)
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/asap")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", default="none,bf16", help="comma-separated precisions: none, bf16")
    p.add_argument("--out", default="bench/results/train.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = MusicData(args.data, MusicDataConfig())
    tokens = args.batch_size * args.window
    rows = []
    for amp in args.amp.split(","):
        bare = _time(bare_step(args, amp), args.steps, tokens)
        proj = _time(project_step(data, args, amp), args.steps, tokens)
        rows.append({"amp": amp, "bare_tok_per_s": round(bare, 1), "project_tok_per_s": round(proj, 1),
                     "ratio": round(proj / bare, 3)})
    shape = f"{args.layers}x{args.hidden}, batch {args.batch_size} x {args.window}, {args.threads} threads"
    print(f"training tokens/s ({shape}); criterion: project loop / bare nn.LSTM of the same run >= 0.95")
    print(f"{'precision':<10}{'bare nn.LSTM':>14}{'project loop':>14}{'ratio':>8}")
    for r in rows:
        print(f"{r['amp']:<10}{r['bare_tok_per_s']:>14,.0f}{r['project_tok_per_s']:>14,.0f}{r['ratio']:>8.3f}")
    out = {"criterion": "tokens/s, project training step vs bare nn.LSTM forward+backward+Adam, same run",
           "shape": {"layers": args.layers, "hidden": args.hidden, "batch_size": args.batch_size,
                     "window": args.window, "threads": args.threads, "timed_steps": args.steps},
           "machine": {"cpu_count": torch.get_num_threads(), "processor": platform.machine(),
                       "torch": torch.__version__},
           "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
