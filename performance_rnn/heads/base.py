"""What every head shares: the ``Head`` protocol, per-stream sampling settings as tensors, per-stream random
draws, and temperature / top-k / top-p filtering of logits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from performance_rnn.config import SamplingConfig


@dataclass(frozen=True)
class BatchSampling:
    """Per-stream sampling settings as tensors (B,): temperature (0 = greedy), top_k (0 = off), top_p (1 = off)."""

    temperature: Tensor
    top_k: Tensor
    top_p: Tensor
    # no stream greedy or filtered (top-k/top-p): a softmax at temperature is the distribution; derived once here,
    # so whoever edits the tensors in place builds a new BatchSampling from them
    plain: bool = field(init=False)
    divisor: Tensor = field(init=False)  # (B, 1) what logits are divided by: the temperature, at least 1e-6

    def __post_init__(self) -> None:
        plain = not bool(torch.any((self.top_k > 0) | (self.top_p < 1) | (self.temperature <= 0)))
        object.__setattr__(self, "plain", plain)
        object.__setattr__(self, "divisor", self.temperature.unsqueeze(1).clamp_min(1e-6))

    @staticmethod
    def of(configs: Sequence[SamplingConfig], device: torch.device | str = "cpu") -> BatchSampling:
        return BatchSampling(
            torch.tensor([c.temperature for c in configs], dtype=torch.float32, device=device),
            torch.tensor([c.top_k or 0 for c in configs], dtype=torch.long, device=device),
            torch.tensor([c.top_p or 1.0 for c in configs], dtype=torch.float32, device=device),
        )

    def select(self, index: Tensor) -> BatchSampling:
        return BatchSampling(self.temperature[index], self.top_k[index], self.top_p[index])


def draw_uniform(generators: Sequence[torch.Generator], n: int = 1) -> Tensor:
    """(B, n) uniforms in [0, 1), row b drawn from generators[b] (so a stream's samples do not depend on
    which other streams share its batch)."""
    if len(generators) == 1:
        return torch.rand(1, n, generator=generators[0], dtype=torch.float64)
    return torch.stack([torch.rand(n, generator=g, dtype=torch.float64) for g in generators])


def draw_normal(generators: Sequence[torch.Generator], n: int = 1) -> Tensor:
    """(B, n) standard normals, row b from generators[b]."""
    return torch.stack([torch.randn(n, generator=g, dtype=torch.float64) for g in generators])


class Head(Protocol):
    num_params: int

    def sample(self, params: Tensor, settings: BatchSampling, generators: Sequence[torch.Generator]) -> Tensor: ...

    def log_prob(self, params: Tensor, targets: Tensor) -> Tensor: ...


def filtered_log_probs(logits: Tensor, settings: BatchSampling) -> Tensor:
    """logits (B, V) -> log-probabilities after temperature, top-k and top-p (removed tokens get -inf).

    Temperature 0 rows keep only their argmax.
    """
    return torch.log_softmax(filtered_logits(logits, settings), dim=-1)


def filtered_logits(logits: Tensor, settings: BatchSampling) -> Tensor:
    """logits (B, V) -> logits / temperature, with those top-k and top-p remove (and all but the argmax of
    temperature-0 rows) at -inf. Where no stream filters (``settings.plain``) just the division."""
    scaled = logits.float() / settings.divisor.to(logits.device)
    if settings.plain:
        return scaled
    greedy = settings.temperature.to(logits.device) <= 0
    sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)  # (B, V)
    rank = torch.arange(logits.shape[-1], device=logits.device).unsqueeze(0)  # (1, V)
    k = settings.top_k.to(logits.device).unsqueeze(1)
    k = torch.where(greedy.unsqueeze(1), torch.ones_like(k), k)
    drop = (k > 0) & (rank >= k)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above each rank
    drop |= (before >= settings.top_p.to(logits.device).unsqueeze(1)) & (rank > 0)
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(scaled, float("-inf")).scatter(1, order, sorted_logits)
