"""What every head shares: the ``Head`` protocol, per-stream sampling settings as tensors, per-stream random
draws, and temperature / top-k / top-p filtering of logits."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, cast

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


# A stream's source of random numbers. ``sampling.generators_from_seeds`` makes ``random.Random`` (Mersenne Twister,
# 53-bit uniforms): one C call per stream and one tensor per batch, so 64 streams draw in ~10 us, where 64
# ``torch.rand`` calls on ``torch.Generator``s took ~100 us. A ``torch.Generator`` is still accepted (a caller's
# beam-search generator, say); the streams of one batch use one kind.
Generator: TypeAlias = random.Random | torch.Generator


def draw_uniform(generators: Sequence[Generator], n: int = 1) -> Tensor:
    """(B, n) uniforms in [0, 1), float64, row b drawn from generators[b] (so a stream's samples do not depend on
    which other streams share its batch, nor on its row)."""
    if isinstance(generators[0], random.Random):
        rngs = cast(Sequence[random.Random], generators)
        if n == 1:
            if len(rngs) == 1:
                return torch.full((1, 1), rngs[0].random(), dtype=torch.float64)
            return torch.tensor([g.random() for g in rngs], dtype=torch.float64).unsqueeze(1)
        return torch.tensor([[g.random() for _ in range(n)] for g in rngs], dtype=torch.float64)
    gens = cast(Sequence[torch.Generator], generators)
    if len(gens) == 1:
        return torch.rand(1, n, generator=gens[0], dtype=torch.float64)
    return torch.stack([torch.rand(n, generator=g, dtype=torch.float64) for g in gens])


def draw_normal(generators: Sequence[Generator], n: int = 1) -> Tensor:
    """(B, n) standard normals, float64, row b from generators[b] (``random.Random``: Box-Muller on its uniforms,
    so that they follow from the seed as its uniforms do)."""
    if isinstance(generators[0], random.Random):
        return torch.tensor([_box_muller(g, n) for g in cast(Sequence[random.Random], generators)],
                            dtype=torch.float64)
    return torch.stack([torch.randn(n, generator=g, dtype=torch.float64)
                        for g in cast(Sequence[torch.Generator], generators)])


def _box_muller(g: random.Random, n: int) -> list[float]:
    out: list[float] = []
    while len(out) < n:
        r = math.sqrt(-2.0 * math.log(1.0 - g.random()))  # 1 - u in (0, 1]
        a = 2.0 * math.pi * g.random()
        out += (r * math.cos(a), r * math.sin(a))
    return out[:n]


class Head(Protocol):
    num_params: int

    def sample(self, params: Tensor, settings: BatchSampling, generators: Sequence[Generator]) -> Tensor: ...

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
