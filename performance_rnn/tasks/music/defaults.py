"""Everything the music task defaults: Magenta's 3x512 one-hot LSTM, conditioned and augmented, on ``data/music``
(built by ``perfrnn data``), trained into ``runs/music``; the shipped ``checkpoints/music.pt``."""

from __future__ import annotations

from pathlib import Path

from performance_rnn.checkpoint import shipped
from performance_rnn.tasks import ModelSize, TaskDefaults
from performance_rnn.train import TrainConfig

DEFAULTS = TaskDefaults(
    name="music",
    checkpoint=shipped("music.pt"),
    run_dir=Path("runs/music"),
    data=Path("data/music"),
    size=ModelSize(layers=3, hidden=512, embed=0, dropout=0.0),
    train=TrainConfig(),
    flags=frozenset({"embed", "no_controls", "no_augment", "no_stretch"}),
)
