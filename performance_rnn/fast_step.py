"""A latency-first inference step with the same results as ``RecurrentModel.step``.

Per layer one fused matmul: gates = [x, h] @ W + b with the input and hidden weights concatenated, gate rows
reordered to (i, f, o, g) so one sigmoid and one tanh cover them. A one-hot token input is a row lookup in
a precomputed table (W_ih columns + both biases), so layer 0 multiplies only [controls, h]. Weights may be
stored in bfloat16 (half the bytes to read each step; compute and state stay float32). On CUDA, ``step`` for
a given batch size is captured once as a CUDA graph and replayed.

On this project's 2-core CPU a 3x512 step through ``nn.LSTM`` costs tens of milliseconds (oneDNN overhead);
this step is about a millisecond: see bench/realtime.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from performance_rnn.model import LSTMState, RecurrentModel


class FastStep:
    """Drop-in for a model's ``step`` (and ``forward``, delegated) in inference; no autograd."""

    def __init__(self, model: RecurrentModel, *, weight_dtype: torch.dtype = torch.float32,
                 cuda_graph: bool = True) -> None:
        self.model = model.eval()
        self.config = model.config
        c = model.config
        H = c.hidden_size
        dev = next(model.parameters()).device
        self.device = dev
        self.weight_dtype = weight_dtype
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        self.table: Tensor | None = None  # (V, 4H): layer-0 input contribution per token, biases folded in
        self.weights: list[Tensor] = []  # layer l: (in_l + H, 4H), rows = [input part, hidden part]
        self.biases: list[Tensor] = []
        with torch.no_grad():
            for layer in range(c.num_layers):
                w_ih = getattr(model.lstm, f"weight_ih_l{layer}")[order]  # (4H, in)
                w_hh = getattr(model.lstm, f"weight_hh_l{layer}")[order]  # (4H, H)
                b = (getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}"))[order]
                if layer == 0 and c.input_kind == "tokens":
                    emb = model.embed.weight if model.embed is not None else None
                    tok_w = w_ih[:, : (c.embed_size or c.input_size)]  # (4H, E)
                    table = (emb @ tok_w.T) if emb is not None else tok_w.T.clone()  # (V, 4H)
                    self.table = (table + b).float().contiguous()
                    rest = torch.cat([w_ih[:, tok_w.shape[1] :], w_hh], dim=1)  # (4H, C + H)
                    self.weights.append(rest.T.contiguous().to(weight_dtype))
                    self.biases.append(torch.zeros(4 * H, device=dev))
                else:
                    self.weights.append(torch.cat([w_ih, w_hh], dim=1).T.contiguous().to(weight_dtype))
                    self.biases.append(b.float().contiguous())
            self.out_w = model.out.weight.T.contiguous().to(weight_dtype)  # (H, P)
            self.out_b = model.out.bias.float().contiguous()
        self._graphs: dict[int, _Graph] = {}
        self._use_graph = cuda_graph and dev.type == "cuda"

    def forward(self, inputs: Tensor, state: LSTMState | None = None,
                controls: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """Whole sequences (priming) go through the model's own forward."""
        with torch.no_grad():
            return self.model.forward(inputs, state, controls)

    __call__ = forward

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        return self.model.initial_state(batch_size, device or self.device)

    @torch.no_grad()
    def step(self, inputs: Tensor, state: LSTMState | None = None,
             controls: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """inputs (B,) or (B, D); controls (B, C) -> params (B, P), new state (fresh tensors)."""
        if state is None:
            state = self.initial_state(inputs.shape[0])
        if self._use_graph:
            graph = self._graphs.get(inputs.shape[0])
            if graph is None:
                graph = self._graphs[inputs.shape[0]] = _Graph(self, inputs, state, controls)
            return graph.replay(inputs, state, controls)
        return self._step(inputs, state, controls)

    def _step(self, inputs: Tensor, state: LSTMState, controls: Tensor | None) -> tuple[Tensor, LSTMState]:
        H = self.config.hidden_size
        hs, cs = [], []
        x: Tensor | None = None
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h, c = state.h[layer], state.c[layer]  # (B, H)
            if layer == 0:
                if self.table is not None:
                    base = self.table.index_select(0, inputs)  # (B, 4H)
                    xin = h if controls is None or not self.config.control_size else torch.cat(
                        [controls.float(), h], dim=1)
                else:
                    parts = [inputs.float()] + ([controls.float()] if self.config.control_size else []) + [h]
                    base, xin = b.expand(h.shape[0], -1), torch.cat(parts, dim=1)
            else:
                base, xin = b.expand(h.shape[0], -1), torch.cat([x, h], dim=1)  # type: ignore[list-item]
            gates = _affine(base, xin, w)  # (B, 4H): i, f, o | g
            sig = torch.sigmoid(gates[:, : 3 * H])
            g = torch.tanh(gates[:, 3 * H :])
            c_new = torch.addcmul(sig[:, H : 2 * H] * c, sig[:, :H], g)
            x = sig[:, 2 * H :] * torch.tanh(c_new)
            hs.append(x)
            cs.append(c_new)
        params = _affine(self.out_b, x, self.out_w)  # type: ignore[arg-type]
        return params, LSTMState(torch.stack(hs), torch.stack(cs))


def _affine(bias: Tensor, x: Tensor, w: Tensor) -> Tensor:
    """bias + x @ w in float32, with w possibly stored in a narrower dtype."""
    if w.dtype == torch.float32:
        return torch.addmm(bias, x, w)
    return torch.mm(x.to(w.dtype), w).float().add_(bias)


class _Graph:
    """One CUDA graph of ``FastStep._step`` for a fixed batch size, with static input and state buffers."""

    def __init__(self, fast: FastStep, inputs: Tensor, state: LSTMState, controls: Tensor | None) -> None:
        self.inputs = inputs.clone()
        self.h, self.c = state.h.clone(), state.c.clone()
        self.controls = None if controls is None else controls.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up outside the graph, as CUDA graphs require
            for _ in range(3):
                fast._step(self.inputs, LSTMState(self.h, self.c), self.controls)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.params, out = fast._step(self.inputs, LSTMState(self.h, self.c), self.controls)
        self.h_out, self.c_out = out.h, out.c

    def replay(self, inputs: Tensor, state: LSTMState, controls: Tensor | None) -> tuple[Tensor, LSTMState]:
        self.inputs.copy_(inputs)
        self.h.copy_(state.h)
        self.c.copy_(state.c)
        if self.controls is not None and controls is not None:
            self.controls.copy_(controls)
        self.graph.replay()
        return self.params.clone(), LSTMState(self.h_out.clone(), self.c_out.clone())
