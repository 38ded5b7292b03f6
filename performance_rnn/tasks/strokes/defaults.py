"""Everything the strokes task defaults: the settings the shipped ``checkpoints/strokes.pt`` was trained with (its
stored ``meta.train_config``, and ``checkpoints/strokes.md``): a 1x512 LSTM with 20 Gaussians, 2,000 steps of 64
drawings on one thread. The data are KanjiVG (the installed ``kanjivg`` package), converted once into
``data/kanjivg-rdp1.0.npz`` and read from there after."""

from __future__ import annotations

from pathlib import Path

from performance_rnn.checkpoint import shipped
from performance_rnn.tasks import ModelSize, TaskDefaults
from performance_rnn.tasks.strokes.data import MAX_POINTS
from performance_rnn.train import TrainConfig

DEFAULTS = TaskDefaults(
    name="strokes",
    checkpoint=shipped("strokes.pt"),
    run_dir=Path("runs/strokes"),
    data=Path("data/kanjivg-rdp1.0.npz"),  # the converted-data cache (KanjiVG-derived: CC BY-SA 3.0)
    size=ModelSize(layers=1, hidden=512, mixtures=20, dropout=0.0),
    train=TrainConfig(steps=2000, batch_size=64, window=MAX_POINTS + 1, lr=2e-3, clip_norm=1.0, eval_every=200,
                      eval_batches=0, threads=1),
    flags=frozenset({"mixtures"}),
)
