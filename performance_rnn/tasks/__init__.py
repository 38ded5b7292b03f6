"""The three models (music, text, strokes) behind one small protocol.

Every task folder has the same files: ``defaults.py`` (``DEFAULTS``, one frozen ``TaskDefaults``: everything that
defaults), ``data.py`` (its dataset and ``training_setup``: what the one training loop needs), ``generate.py``
(sampling through the one sampler) and ``evaluate.py`` (held-out figures). ``get_task(name)`` imports a task's
defaults and data modules only when asked, so naming a task never loads the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from performance_rnn.batches import TrainData
from performance_rnn.config import ModelConfig
from performance_rnn.heads import Head
from performance_rnn.train import TrainConfig

TASKS = ("music", "text", "strokes")


@dataclass(frozen=True)
class ModelSize:
    """The architecture flags (``mixtures``: strokes only, 0 elsewhere; ``embed``: 0 = one-hot input)."""

    layers: int
    hidden: int
    embed: int = 0
    mixtures: int = 0
    dropout: float = 0.0


@dataclass(frozen=True)
class TaskDefaults:
    name: str
    checkpoint: Path  # the shipped checkpoint (absolute: resolved from the package, see checkpoint.SHIPPED_DIR)
    run_dir: Path  # where ``perfrnn train`` writes, relative to the working directory
    data: Path | None  # the data location, relative to the working directory; None: an installed package's data
    size: ModelSize
    train: TrainConfig
    flags: frozenset[str]  # task-specific ``perfrnn train`` flags it accepts (dest names, e.g. "mixtures")


@dataclass(frozen=True)
class TrainSetup:
    """What the one training loop needs for one task."""

    data: TrainData
    model_config: ModelConfig
    head: Head
    codec: dict[str, Any]  # primitives, stored in the checkpoint
    extra: dict[str, Any]  # more checkpoint meta (data summary, split)


class TrainingSetup(Protocol):
    def __call__(self, data: Path | None, size: ModelSize, options: Mapping[str, Any]) -> TrainSetup:
        """The dataset at ``data`` (None: the default source), the model config of ``size``, the head and codec.
        ``options``: the task's own flags (e.g. music's ``no_controls``)."""
        ...


@dataclass(frozen=True)
class Task:
    defaults: TaskDefaults
    training: TrainingSetup

    @property
    def name(self) -> str:
        return self.defaults.name


def get_task(name: str) -> Task:
    """The task called ``name`` (one of ``TASKS``); ValueError for any other name."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    defaults = importlib.import_module(f"performance_rnn.tasks.{name}.defaults").DEFAULTS
    data = importlib.import_module(f"performance_rnn.tasks.{name}.data")
    return Task(defaults, data.training_setup)
