"""What the one training loop needs from a dataset: random training batches and deterministic eval batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch import Tensor


@dataclass
class Batch:
    inputs: Tensor  # (B, T) int64 tokens or (B, T, D) float vectors
    targets: Tensor  # what the head scores at each step: (B, T) or (B, T, D)
    controls: Tensor | None = None  # (B, T, C): control of the target at each step
    mask: Tensor | None = None  # (B, T) bool: steps that count in the loss (None = all)


class TrainData(Protocol):
    def train_batch(self, batch_size: int, window: int, rng: np.random.Generator) -> Batch:
        """A random batch of training windows (augmented if the dataset augments)."""
        ...

    def eval_batches(self, split: str, batch_size: int, window: int) -> Iterator[Batch]:
        """Every window of ``split`` ("validation" or "test") once, in a fixed order."""
        ...
