"""A served music model with the engine that owns it, and the engine streams a request asks of it.

Each music model has one ``Engine`` (a ``MusicBackend``), so concurrent renders, WebSocket streams and port
sessions on the same model are stepped together in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from midi_io.notes import Note
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import Engine, StreamSpec
from performance_rnn.tasks.music.generate import MusicModel, controls_for, stream_spec
from service.errors import InvalidRequest


@dataclass(frozen=True)
class MusicBackend:
    """A loaded music model and the engine that owns it; ``name`` is its checkpoint's stem."""

    name: str
    model: MusicModel
    engine: Engine


def music_spec(mm: MusicModel, *, seed: int, sampling: SamplingConfig, primer: Sequence[Note] | None,
               density: float | None, key: str | None, lookahead_s: float | None,
               max_seconds: float | None) -> StreamSpec:
    """A stream spec; InvalidRequest for controls the checkpoint does not take."""
    try:
        return stream_spec(mm, seed=seed, sampling=sampling, primer=primer, density_nps=density, key=key,
                           lookahead_s=lookahead_s, max_seconds=max_seconds)
    except ValueError as exc:  # controls on an unconditioned model, a bad key
        raise InvalidRequest(str(exc)) from exc


def control_vector_for(mm: MusicModel, density: float | None, key: str | None) -> torch.Tensor | None:
    """The control vector for a stream; InvalidRequest for controls the checkpoint does not take."""
    try:
        return controls_for(mm, density, key)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
