"""Output heads: turn a model's per-step parameters into a distribution to sample from and score.

A head has ``num_params`` (the model's output width), ``sample(params, settings, generators)`` and
``log_prob(params, targets)``. ``CategoricalHead`` serves music events and text characters, and
``StrokeMixtureHead`` pen strokes. The sampler never branches on which head it holds.
"""

from performance_rnn.heads.base import (
    BatchSampling,
    Generator,
    Head,
    draw_normal,
    draw_uniform,
    filtered_log_probs,
    filtered_logits,
)
from performance_rnn.heads.categorical import CategoricalHead
from performance_rnn.heads.mixture import StrokeMixtureHead

__all__ = ["BatchSampling", "CategoricalHead", "Generator", "Head", "StrokeMixtureHead", "draw_normal", "draw_uniform",
           "filtered_log_probs", "filtered_logits"]
