"""The one sampler: priming, carried state, batched streams, streaming, stop conditions and beam search.

Written against a step model and a head, so music events, text characters and pen strokes all run through
this code. A stream's frontier is (params, state): ``params`` scores the next output, ``state`` the LSTM.
Controls at a step describe the output being predicted (Magenta's convention: the control for event i+1 is
fed alongside input event i).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

import torch
from torch import Tensor

from performance_rnn.config import SamplingConfig
from performance_rnn.heads import BatchSampling, CategoricalHead, Generator, Head, filtered_log_probs
from performance_rnn.model import LSTMState


class StepModel(Protocol):
    def forward(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]: ...

    def step(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]: ...


class TokenMask(Protocol):
    """Which outputs each stream of a batch may produce next (categorical heads), updated as they are produced.
    Music uses ``performance_rnn.keyboard.KeyboardMask``."""

    def allowed(self) -> Tensor: ...  # (B, V) bool

    def apply(self, logits: Tensor) -> Tensor: ...  # (B, V) logits with the impossible ones at -inf

    def update(self, tokens: Tensor) -> None: ...  # (B,); -1 leaves a stream unchanged

    # apply, head.sample and update in one (the keyboard mask's is one C pass) -> tokens (B,)
    def sample(self, head: Head, logits: Tensor, settings: BatchSampling,
               generators: Sequence[Generator]) -> Tensor: ...

    def select(self, index: Tensor) -> Self: ...  # the masks of the streams at ``index``

    def put(self, index: Tensor, other: Self) -> None: ...  # write ``select``'s result back


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
    window: int | None = None,
) -> Frontier:
    """Feed each primer (T_i, ...) through the model once (T_i >= 1) and stack the streams' frontiers; with
    ``window``, only each primer's last ``window`` steps (see ``performance_rnn.tasks.music.generate.PRIME_WINDOW``).

    ``controls[i]`` is (T_i, C) for a conditioned model: row t is the control of the output after input t.
    """
    params, states = [], []
    for i, primer in enumerate(primers):
        if primer.shape[0] < 1:
            raise ValueError("a primer needs at least one input step")
        c = None if controls is None else controls[i]
        ctrl = None if c is None else c.unsqueeze(0)  # (1, T, C)
        if window is not None:
            primer = primer[-window:]
            ctrl = None if ctrl is None else ctrl[:, -window:]
        last, state = prime_last(model, primer.unsqueeze(0), None, ctrl)  # (1, P)
        params.append(last)
        states.append(state)
    return Frontier(torch.cat(params), LSTMState.cat(states))


def prime_last(model: StepModel, inputs: Tensor, state: LSTMState | None,
               controls: Tensor | None) -> tuple[Tensor, LSTMState]:
    """Feed inputs (B, T, ...) -> (the last step's params (B, P), state): the model's ``prime`` where it has one
    (the inference step computes its output layer for the last step only), else ``forward``."""
    fast = getattr(model, "prime", None)
    if fast is not None:
        return fast(inputs, state, controls)
    out, state = model.forward(inputs, state, controls)
    return out[:, -1], state


@torch.no_grad()
def advance(
    model: StepModel,
    head: Head,
    frontier: Frontier,
    settings: BatchSampling,
    generators: Sequence[Generator],
    controls: Tensor | None = None,
    mask: TokenMask | None = None,
) -> tuple[Tensor, Frontier]:
    """Sample every stream's next output and feed it back: -> (outputs (B, ...), the new frontier).

    ``controls`` (B, C) condition the output *after* this one. The state is carried, never re-zeroed.
    ``mask`` rules out impossible outputs (their logits become -inf) and is advanced by the outputs.
    """
    if mask is None:
        outputs = head.sample(frontier.params, settings, generators)
    else:
        outputs = mask.sample(head, frontier.params, settings, generators)
    params, state = model.step(outputs, frontier.state, controls)
    return outputs, Frontier(params, state)


def generate(
    model: StepModel,
    head: Head,
    primers: Sequence[Tensor],
    sampling: Sequence[SamplingConfig],
    generators: Sequence[Generator],
    *,
    max_steps: int,
    primer_controls: Sequence[Tensor | None] | None = None,
    controls: ControlFn | None = None,
    stop: StopFn | None = None,
    mask: TokenMask | None = None,
    prime_window: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stream a batch: yields (outputs (B, ...), active (B,) bool) once per step, for up to ``max_steps``.

    Streams that ``stop`` marks finished stay in the batch (their outputs are ignored, ``active`` is False)
    so that every stream's samples are independent of the others'. Ends when all streams are finished.
    ``mask`` (already advanced past the primers) rules out impossible outputs at every step.
    """
    if not len(primers) == len(sampling) == len(generators):
        raise ValueError("need one sampling config and one generator per primer")
    device = primers[0].device
    frontier = prime(model, primers, primer_controls, prime_window)
    settings = BatchSampling.of(sampling, device)
    active = torch.ones(len(primers), dtype=torch.bool)
    last = torch.stack([p[-1] for p in primers])
    for t in range(max_steps):
        ctrl = controls(t, last) if controls is not None else None
        outputs, frontier = advance(model, head, frontier, settings, generators, ctrl, mask)
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
    sampling: SamplingConfig = SamplingConfig(),
    generator: Generator | None = None,
    branch_factor: int = 2,
    steps_per_iteration: int = 1,
    primer_controls: Tensor | None = None,
    controls: Tensor | None = None,
    mask: TokenMask | None = None,
    stop: Callable[[Tensor], Tensor] | None = None,
    prime_window: int | None = None,
) -> tuple[list[int], float]:
    """Magenta's beam search over sampled branches -> (tokens, log p) of the best continuation of ``primer``.

    Each iteration copies every beam ``branch_factor`` times, extends each copy by ``steps_per_iteration``
    tokens *sampled* with ``sampling`` (temperature, top-k, top-p) from ``generator``, scores it by the log
    probability of its tokens under that sampling distribution, and keeps the ``beam_size`` best. So the seed,
    temperature and filters all matter, and ``beam_size=1, branch_factor=1`` is plain sampling. ``mask``
    (advanced past the primer) rules out impossible tokens. ``controls`` (max_steps, C) condition step t.
    ``stop(seqs (beams, t)) -> (beams,) bool`` ends the search once the best beam is finished.
    """
    if beam_size < 1 or branch_factor < 1 or steps_per_iteration < 1:
        raise ValueError("beam_size, branch_factor and steps_per_iteration must be >= 1")
    gen = generator if generator is not None else generators_from_seeds([0])[0]
    frontier = prime(model, [primer], None if primer_controls is None else [primer_controls], prime_window)
    seqs = torch.zeros(1, 0, dtype=torch.long, device=primer.device)  # (beams, t)
    scores = torch.zeros(1, dtype=torch.float64, device=primer.device)  # (beams,)
    t = 0
    while t < max_steps:
        rep = torch.arange(seqs.shape[0], device=primer.device).repeat_interleave(branch_factor)
        seqs, scores = seqs[rep], scores[rep]
        frontier = Frontier(frontier.params[rep], frontier.state.select(rep))
        mask = None if mask is None else mask.select(rep)
        settings = BatchSampling.of([sampling] * len(rep), primer.device)
        for _ in range(min(steps_per_iteration, max_steps - t)):
            params = frontier.params if mask is None else mask.apply(frontier.params)
            logp = filtered_log_probs(params, settings).double()  # (beams, V)
            token = head.sample(params, settings, [gen] * len(rep))
            scores = scores + logp.gather(1, token.unsqueeze(1)).squeeze(1)
            if mask is not None:
                mask.update(token)
            ctrl = None if controls is None else controls[t].expand(len(rep), -1)
            params, state = model.step(token, frontier.state, ctrl)
            frontier = Frontier(params, state)
            seqs = torch.cat([seqs, token.unsqueeze(1)], dim=1)
            t += 1
        keep = scores.topk(min(beam_size, len(scores))).indices
        seqs, scores = seqs[keep], scores[keep]
        frontier = Frontier(frontier.params[keep], frontier.state.select(keep))
        mask = None if mask is None else mask.select(keep)
        if stop is not None and bool(stop(seqs[:1])[0]):
            break
    return seqs[0].tolist(), float(scores[0])


def generators_from_seeds(seeds: Sequence[int]) -> list[random.Random]:
    """One ``random.Random`` per stream, seeded with its seed taken as an unsigned 64-bit value (``Random`` would
    treat -s as s); library code never seeds a global RNG. A stream's draws follow from its seed alone, whatever
    batch or row it is in (see ``heads.base.Generator``)."""
    return [random.Random(int(s) & 0xFFFF_FFFF_FFFF_FFFF) for s in seeds]
