"""The pen-stroke head: M bivariate Gaussians for (dx, dy) plus 3 pen states (sketch-rnn's stroke-5).

Parameters per step, ``num_params = 3 + 6 M``, in magenta's order: 3 pen logits (down, up, end), then M
each of mixture logits, mu_x, mu_y, log sigma_x, log sigma_y, and pre-tanh rho.

Temperature tau (the one rule, pinned by tests):

- mixture logits and pen logits are divided by tau (categorical temperature);
- each component's sigma is multiplied by sqrt(tau), i.e. its variance by tau. This is the sketch-rnn
  *paper*'s rule (hardmaru, distill post--handwriting#6); magenta's code and the rnn-tutorial use sigma*tau
  instead, available here as ``sigma_rule="linear"``. Neither is the Boltzmann temperature of the mixture
  as a whole, so "temperature" is a heuristic name for this family;
- tau = 0 gives the mode of the most likely component: argmax mixture weight, its mean, argmax pen state.

top_k / top_p do not apply to this head and are ignored. Each stream draws 2 uniforms (component, pen)
and 2 normals per step from its own generator, whatever its temperature, so a stream's samples do not
depend on the other streams in its batch.

Loss (``log_prob`` of stroke-5 targets): mixture log-density of (dx, dy) where the target is not the end
state (p3 = 0), plus the log-probability of the target pen state, as sketch-rnn. Offsets are in units of
the data's scale factor, so the figures compare only under the same normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from performance_rnn.heads.base import BatchSampling, Generator, draw_normal, draw_uniform

LOG_SIGMA_MIN = -5.0  # sigma >= 0.0067 scale units (~0.14 px of KanjiVG's 109): no collapse on a point
LOG_SIGMA_MAX = 4.0
RHO_MAX = 1.0 - 1e-5


class MixtureParams:
    """The named parts of a (..., 3 + 6M) parameter tensor, constrained (sigma > 0, |rho| < 1)."""

    def __init__(self, params: Tensor, num_mixtures: int) -> None:
        p = params.float()
        m = num_mixtures
        self.pen_logits = p[..., :3]
        self.pi_logits = p[..., 3:3 + m]
        self.mu_x = p[..., 3 + m:3 + 2 * m]
        self.mu_y = p[..., 3 + 2 * m:3 + 3 * m]
        self.log_sx = p[..., 3 + 3 * m:3 + 4 * m].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        self.log_sy = p[..., 3 + 4 * m:3 + 5 * m].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        self.rho = torch.tanh(p[..., 3 + 5 * m:3 + 6 * m]).clamp(-RHO_MAX, RHO_MAX)


def bivariate_log_density(x: Tensor, y: Tensor, mp: MixtureParams) -> Tensor:
    """log N(x, y | component k) for every component: x, y (...) -> (..., M)."""
    sx, sy = mp.log_sx.exp(), mp.log_sy.exp()
    zx = (x.unsqueeze(-1) - mp.mu_x) / sx
    zy = (y.unsqueeze(-1) - mp.mu_y) / sy
    one_minus = 1.0 - mp.rho**2
    z = zx**2 + zy**2 - 2.0 * mp.rho * zx * zy
    return -math.log(2 * math.pi) - mp.log_sx - mp.log_sy - 0.5 * torch.log(one_minus) - z / (2.0 * one_minus)


class StrokeMixtureHead:
    """sketch-rnn's output head: ``num_mixtures`` bivariate Gaussians + a 3-way pen softmax."""

    def __init__(self, num_mixtures: int = 20, sigma_rule: str = "sqrt") -> None:
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {num_mixtures}")
        if sigma_rule not in ("sqrt", "linear"):
            raise ValueError(f"sigma_rule must be 'sqrt' (paper) or 'linear' (magenta code), got {sigma_rule!r}")
        self.num_mixtures = num_mixtures
        self.sigma_rule = sigma_rule
        self.num_params = 3 + 6 * num_mixtures

    def log_prob(self, params: Tensor, targets: Tensor) -> Tensor:
        """params (..., 3+6M), targets (..., 5) stroke-5 -> log p (...): offsets (unless p3) + pen state."""
        mp = MixtureParams(params, self.num_mixtures)
        t = targets.float()
        log_pi = torch.log_softmax(mp.pi_logits, dim=-1)
        offsets = torch.logsumexp(log_pi + bivariate_log_density(t[..., 0], t[..., 1], mp), dim=-1)
        pen = (torch.log_softmax(mp.pen_logits, dim=-1) * t[..., 2:5]).sum(-1)
        return offsets * (1.0 - t[..., 4]) + pen

    def sample(self, params: Tensor, settings: BatchSampling, generators: Sequence[Generator]) -> Tensor:
        """params (B, 3+6M) -> stroke-5 rows (B, 5) float32; an end state comes out as (0, 0, 0, 0, 1)."""
        mp = MixtureParams(params, self.num_mixtures)
        tau = settings.temperature.to(params.device).float()  # (B,)
        greedy = tau <= 0
        safe = tau.clamp_min(1e-6).unsqueeze(1)
        u = draw_uniform(generators, 2).to(params.device)  # (B, 2): component, pen
        n = draw_normal(generators, 2).to(params.device).float()  # (B, 2)
        comp = _categorical(mp.pi_logits / safe, u[:, 0], greedy)  # (B,)
        pen = _categorical(mp.pen_logits / safe, u[:, 1], greedy)  # (B,)

        def pick(x: Tensor) -> Tensor:
            return x.gather(1, comp.unsqueeze(1)).squeeze(1)

        factor = tau.sqrt() if self.sigma_rule == "sqrt" else tau  # (B,), 0 for greedy rows
        sx, sy = pick(mp.log_sx).exp() * factor, pick(mp.log_sy).exp() * factor
        rho = pick(mp.rho)
        dx = pick(mp.mu_x) + sx * n[:, 0]
        dy = pick(mp.mu_y) + sy * (rho * n[:, 0] + torch.sqrt(1.0 - rho**2) * n[:, 1])
        ended = pen == 2
        out = torch.zeros(params.shape[0], 5, device=params.device)
        out[:, 0] = torch.where(ended, 0.0, dx)
        out[:, 1] = torch.where(ended, 0.0, dy)
        out.scatter_(1, (pen + 2).unsqueeze(1), 1.0)
        return out


def _categorical(logits: Tensor, u: Tensor, greedy: Tensor) -> Tensor:
    """Inverse-CDF draw per row from softmax(logits) with uniforms u (B,); argmax where ``greedy``."""
    probs = torch.softmax(logits.double(), dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    drawn = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    drawn = drawn.clamp_max(logits.shape[-1] - 1)
    return torch.where(greedy, logits.argmax(dim=-1), drawn)
