"""The one sampler: priming, carried state, batched streams, streaming, stop conditions and beam search.

Written against a step model and a head, so music events, text characters and pen strokes all run through
this code. A stream's frontier is (params, state): ``params`` scores the next output, ``state`` the LSTM.
Controls at a step describe the output being predicted (Magenta's convention: the control for event i+1 is
fed alongside input event i).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from performance_rnn.config import SamplingConfig
from performance_rnn.heads import BatchSampling, CategoricalHead, Head
from performance_rnn.model import LSTMState


class StepModel(Protocol):
    def forward(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]: ...

    def step(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]: ...


# controls for the next step of every stream: called with the step index and the streams' last outputs
ControlFn = Callable[[int, Tensor], Tensor | None]
# which streams are finished after this step's outputs: (step index, outputs (B, ...)) -> (B,) bool
StopFn = Callable[[int, Tensor], Tensor]


@dataclass
class Frontier:
    """Where a batch of streams stands: the parameters of their next output and their LSTM state."""

    params: Tensor  # (B, P)
    state: LSTMState


@torch.no_grad()
def prime(
    model: StepModel,
    primers: Sequence[Tensor],
    controls: Sequence[Tensor | None] | None = None,
) -> Frontier:
    """Feed each primer (T_i, ...) through the model once (T_i >= 1) and stack the streams' frontiers.

    ``controls[i]`` is (T_i, C) for a conditioned model: row t is the control of the output after input t.
    """
    params, states = [], []
    for i, primer in enumerate(primers):
        if primer.shape[0] < 1:
            raise ValueError("a primer needs at least one input step")
        ctrl = None if controls is None or controls[i] is None else controls[i].unsqueeze(0)  # (1, T, C)
        out, state = model.forward(primer.unsqueeze(0), None, ctrl)  # (1, T, P)
        params.append(out[:, -1])
        states.append(state)
    return Frontier(torch.cat(params), LSTMState.cat(states))


@torch.no_grad()
def advance(
    model: StepModel,
    head: Head,
    frontier: Frontier,
    settings: BatchSampling,
    generators: Sequence[torch.Generator],
    controls: Tensor | None = None,
) -> tuple[Tensor, Frontier]:
    """Sample every stream's next output and feed it back: -> (outputs (B, ...), the new frontier).

    ``controls`` (B, C) condition the output *after* this one. The state is carried, never re-zeroed.
    """
    outputs = head.sample(frontier.params, settings, generators)
    params, state = model.step(outputs, frontier.state, controls)
    return outputs, Frontier(params, state)


def generate(
    model: StepModel,
    head: Head,
    primers: Sequence[Tensor],
    sampling: Sequence[SamplingConfig],
    generators: Sequence[torch.Generator],
    *,
    max_steps: int,
    primer_controls: Sequence[Tensor | None] | None = None,
    controls: ControlFn | None = None,
    stop: StopFn | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stream a batch: yields (outputs (B, ...), active (B,) bool) once per step, for up to ``max_steps``.

    Streams that ``stop`` marks finished stay in the batch (their outputs are ignored, ``active`` is False)
    so that every stream's samples are independent of the others'. Ends when all streams are finished.
    """
    if not len(primers) == len(sampling) == len(generators):
        raise ValueError("need one sampling config and one generator per primer")
    device = primers[0].device
    frontier = prime(model, primers, primer_controls)
    settings = BatchSampling.of(sampling, device)
    active = torch.ones(len(primers), dtype=torch.bool)
    last = torch.stack([p[-1] for p in primers])
    for t in range(max_steps):
        ctrl = controls(t, last) if controls is not None else None
        outputs, frontier = advance(model, head, frontier, settings, generators, ctrl)
        yield outputs, active.clone()
        last = outputs
        if stop is not None:
            active &= ~stop(t, outputs).cpu()
            if not active.any():
                return


@torch.no_grad()
def beam_search(
    model: StepModel,
    head: CategoricalHead,
    primer: Tensor,
    *,
    beam_size: int,
    max_steps: int,
    temperature: float = 1.0,
    primer_controls: Tensor | None = None,
    controls: Tensor | None = None,
) -> tuple[list[int], float]:
    """The most likely continuation of one token primer under a beam of ``beam_size`` -> (tokens, log p).

    ``controls`` (max_steps, C), if given, condition step t for every beam.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    frontier = prime(model, [primer], None if primer_controls is None else [primer_controls])
    seqs = torch.zeros(1, 0, dtype=torch.long, device=primer.device)  # (beams, t)
    scores = torch.zeros(1, device=primer.device)  # (beams,)
    for t in range(max_steps):
        logp = torch.log_softmax(frontier.params.float() / max(temperature, 1e-6), dim=-1)  # (beams, V)
        total = (scores.unsqueeze(1) + logp).flatten()  # (beams * V,)
        scores, flat = total.topk(min(beam_size, total.numel()))
        beam, token = flat // logp.shape[1], flat % logp.shape[1]
        seqs = torch.cat([seqs[beam], token.unsqueeze(1)], dim=1)
        state = frontier.state.select(beam)
        ctrl = None if controls is None else controls[t].expand(len(beam), -1)
        params, state = model.step(token, state, ctrl)
        frontier = Frontier(params, state)
    return seqs[0].tolist(), float(scores[0])


def generators_from_seeds(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per stream, seeded (library code never seeds the global RNG)."""
    gens = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(int(s))
        gens.append(g)
    return gens
