"""``perfrnn train --task text|strokes``: the sibling models through the one training loop.

Arguments the music parser leaves at None take the sibling's own default (below), so the lead's parser can
declare ``default=None`` for the shared flags; explicit values always win.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from performance_rnn.train import TrainConfig

log = logging.getLogger(__name__)

# the shipped checkpoints' settings (see checkpoints/text.md and checkpoints/strokes.md)
DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"run_dir": "runs/text", "hidden": 384, "layers": 2, "embed": 64, "dropout": 0.0,
             "steps": 2200, "batch_size": 32, "window": 128, "lr": 3e-3, "eval_every": 250, "clip_norm": 1.0},
    "strokes": {"run_dir": "runs/strokes", "hidden": 384, "layers": 1, "mixtures": 20, "dropout": 0.0,
                "steps": 1800, "batch_size": 64, "window": 201, "lr": 2e-3, "eval_every": 200, "clip_norm": 1.0},
}


def _pick(args: argparse.Namespace, task: str, name: str) -> Any:
    value = getattr(args, name, None)
    return DEFAULTS[task][name] if value is None else value


def run(args: argparse.Namespace, cfg: TrainConfig | None = None) -> int:
    """Train ``args.task`` ("text" or "strokes"). ``args`` attributes and ``cfg`` fields that are None (or
    missing) take the task's defaults.

    The finished run is exported (half precision) to ``RUN_DIR/<task>.pt``."""
    task = args.task
    if task not in DEFAULTS:
        raise ValueError(f"task must be one of {sorted(DEFAULTS)}, got {task!r}")
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name in DEFAULTS[task]]
    if cfg is None:  # no config: the task's defaults
        cfg = dataclasses.replace(TrainConfig(), **{n: DEFAULTS[task][n] for n in names})
    else:  # fields the caller left None take the task's defaults
        cfg = dataclasses.replace(cfg, **{n: DEFAULTS[task][n] for n in names if getattr(cfg, n) is None})
    run_dir = Path(_pick(args, task, "run_dir"))
    export = run_dir / f"{task}.pt"
    common = {"hidden": _pick(args, task, "hidden"), "layers": _pick(args, task, "layers"),
              "dropout": _pick(args, task, "dropout"), "seed": cfg.seed, "export": export}
    log.info("training %s into %s (%s)", task, run_dir, cfg)
    if task == "text":
        from performance_rnn.tasks.text.data import train_model as train_text

        state = train_text(run_dir, cfg, embed=_pick(args, task, "embed") or 64, **common)
    else:
        from performance_rnn.tasks.strokes.data import train_model as train_strokes

        state = train_strokes(run_dir, cfg, mixtures=_pick(args, task, "mixtures"), **common)
    print(json.dumps({"step": state["step"], "best_val_nll": state["best_val"], "wall_s": round(state["wall_s"], 1),
                      "checkpoint": str(export) if export.exists() else None}))
    return 0
