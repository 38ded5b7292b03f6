"""The recurrent model shared by music, text and strokes: inputs -> LSTM -> head parameters.

The model holds no hidden state and does no sampling: state goes in and comes out of ``forward``/``step``,
so one loaded model serves many concurrent streams, each holding its own ``LSTMState``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from performance_rnn.config import ModelConfig


class LSTMState(NamedTuple):
    h: Tensor  # (layers, B, H)
    c: Tensor  # (layers, B, H)

    def select(self, index: Tensor) -> LSTMState:
        """The state of the streams at ``index`` (B',) along the batch dimension."""
        return LSTMState(self.h.index_select(1, index), self.c.index_select(1, index))

    @staticmethod
    def cat(states: list[LSTMState]) -> LSTMState:
        return LSTMState(torch.cat([s.h for s in states], 1), torch.cat([s.c for s in states], 1))


class RecurrentModel(nn.Module):
    """Embedding (tokens) or identity (vectors), concatenated with controls, through an ``nn.LSTM``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        width = c.embed_size if (c.input_kind == "tokens" and c.embed_size) else c.input_size
        # tokens go in one-hot (as Magenta) unless embed_size asks for a learned embedding
        self.embed = nn.Embedding(c.input_size, c.embed_size) if c.input_kind == "tokens" and c.embed_size else None
        self.lstm = nn.LSTM(width + c.control_size, c.hidden_size, c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.out = nn.Linear(c.hidden_size, c.output_size)

    def _embed(self, inputs: Tensor) -> Tensor:
        if self.config.input_kind == "vectors":
            return inputs.float()
        if self.embed is not None:
            return self.embed(inputs)
        return nn.functional.one_hot(inputs, self.config.input_size).float()

    def embed_inputs(self, inputs: Tensor, controls: Tensor | None) -> Tensor:
        """inputs (B, T[, D]), controls (B, T, C) -> the LSTM's input sequence (B, T, E + C)."""
        x = self._embed(inputs)  # (B, T, E)
        if self.config.control_size:
            if controls is None:
                raise ValueError("this model is conditioned: pass controls (B, T, C)")
            x = torch.cat([x, controls.to(x.dtype)], dim=-1)
        return x

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> LSTMState:
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return LSTMState(torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def forward(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        """inputs (B, T) int64 or (B, T, D) float; controls (B, T, C) -> params (B, T, P), state."""
        x = self.embed_inputs(inputs, controls)
        if state is None:
            state = self.initial_state(inputs.shape[0], inputs.device)
        y, (h, c) = self.lstm(x, (state.h, state.c))  # (B, T, H)
        return self.out(y), LSTMState(h, c)

    def step(
        self, inputs: Tensor, state: LSTMState | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        """One tick: inputs (B,) or (B, D); controls (B, C) -> params (B, P), state."""
        params, state = self.forward(inputs.unsqueeze(1), state, None if controls is None else controls.unsqueeze(1))
        return params.squeeze(1), state  # (B, P)
