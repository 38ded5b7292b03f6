"""The categorical head: a softmax over a vocabulary (music events, text characters)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from performance_rnn.heads import fast_sample
from performance_rnn.heads.base import BatchSampling, Generator, draw_uniform, filtered_logits


class CategoricalHead:
    """A softmax over ``vocab_size`` tokens. Temperature divides the logits."""

    def __init__(self, vocab_size: int) -> None:
        self.num_params = vocab_size
        fast_sample.available()  # build (first time on this machine) or load the kernel now, off any real-time path

    def sample(self, params: Tensor, settings: BatchSampling, generators: Sequence[Generator]) -> Tensor:
        """params (B, V) logits -> tokens (B,) int64, by inverse CDF on a per-stream uniform (in one C pass where
        ``fast_sample`` can: the CPU and plain settings)."""
        if settings.plain and fast_sample.usable(params):
            return fast_sample.sample(params, settings.temperature, draw_uniform(generators))[0]
        return self.sample_by_tensor_ops(params, settings, generators)

    def sample_by_tensor_ops(self, params: Tensor, settings: BatchSampling, generators: Sequence[Generator]) -> Tensor:
        """``sample`` for any settings and device (greedy, top-k, top-p, CUDA)."""
        probs = torch.softmax(filtered_logits(params, settings), dim=-1, dtype=torch.float64)  # (B, V)
        cdf = torch.cumsum(probs, dim=-1)
        u = draw_uniform(generators).to(probs.device) * cdf[:, -1:]  # (B, 1)
        tokens = torch.searchsorted(cdf, u, right=True).squeeze(1)
        return tokens.clamp_max(params.shape[-1] - 1)

    def log_prob(self, params: Tensor, targets: Tensor) -> Tensor:
        """params (..., V), targets (...) int64 -> log p(targets) (...)."""
        logp = torch.log_softmax(params.float(), dim=-1)
        return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
