"""A latency-first inference step (and priming pass) with the results of ``RecurrentModel.step``/``forward``.

Per layer one fused product: gates = [x, h] @ W.T + b with the input and hidden weights concatenated, gate rows
reordered to (i, f, o, g) and the g rows doubled, so that one sigmoid covers all four (tanh(g) = 2 sigmoid(2g) - 1).
A one-hot token input is a row lookup in a precomputed table (W_ih columns + both biases), so layer 0 multiplies
only [controls, h].

Weights are stored as ``float32``, ``bfloat16`` (compute and state stay float32) or ``int8``: per output channel
symmetric scales, activations quantized per call (torch's own x86/fbgemm dynamic-quantized linear kernel, which
uses the CPU's int8 dot-product instructions). ``choose_weights`` picks int8 for a checkpoint at load time when the
int8 step's next-token distributions stay within ``INT8_KL_TOLERANCE`` nats (KL) of float32's on a sampled probe
(``perfrnn eval --weights int8`` gives the held-out NLL change; see the model card).

Priming (``forward`` over a primer) with int8 weights runs torch's dynamic-quantized ``LSTM`` (the same int8
kernel, per-channel weights, the time loop in C++). On CUDA, ``step`` for a given batch size is captured once as
a CUDA graph and replayed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from performance_rnn.model import LSTMState, RecurrentModel

Weights = Literal["float32", "bfloat16", "int8"]
WEIGHTS: tuple[Weights, ...] = ("float32", "bfloat16", "int8")
INT8_KL_TOLERANCE = 0.01  # nats per event: int8 is the default only when it moves the model at most this much


def int8_available(device: torch.device | str = "cpu") -> bool:
    """True when torch's dynamic-quantized int8 linear kernel runs here (CPU with the x86/fbgemm engine)."""
    if torch.device(device).type != "cpu":
        return False
    if torch.backends.quantized.engine not in ("x86", "fbgemm"):
        return False
    try:
        _Int8Affine(torch.ones(2, 2), torch.zeros(2))(torch.ones(1, 2))
    except (RuntimeError, AttributeError):
        return False
    return True


class _Int8Affine:
    """x (B, in) -> x @ W.T + b with W (out, in) in int8, one float scale per output row."""

    def __init__(self, w: Tensor, b: Tensor | None) -> None:
        w = w.detach().float().cpu()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        with warnings.catch_warnings():  # quantized-tensor constructors warn of a future removal
            warnings.simplefilter("ignore")
            qw = torch.quantize_per_channel(w, scale.double(), torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qw, None if b is None else b.detach().float().cpu())
        self.out_features = w.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        # reduce_range: 7-bit activations, as torch's dynamic quantization does on x86, so that CPUs without
        # VNNI cannot saturate their 16-bit intermediate sums
        return torch.ops.quantized.linear_dynamic(x, self.packed, True)


def _affine(w: Tensor, b: Tensor | None, weights: Weights) -> Callable[[Tensor], Tensor]:
    """x -> x @ w.T + b, with w (out, in) stored as ``weights``."""
    if weights == "int8":
        return _Int8Affine(w, b)
    wt = w.detach().to(torch.bfloat16 if weights == "bfloat16" else torch.float32).contiguous()
    bias = None if b is None else b.detach().float().contiguous()
    if weights == "float32":
        return lambda x: torch.nn.functional.linear(x, wt, bias)
    return lambda x: (torch.nn.functional.linear(x.to(torch.bfloat16), wt).float()
                      if bias is None else torch.nn.functional.linear(x.to(torch.bfloat16), wt).float().add_(bias))


class FastStep:
    """Drop-in for a model's ``step`` and ``forward`` in inference; no autograd."""

    def __init__(self, model: RecurrentModel, *, weights: Weights = "float32", cuda_graph: bool = True) -> None:
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
        self.model = model.eval()
        self.config = c = model.config
        H = c.hidden_size
        dev = next(model.parameters()).device
        if weights == "int8" and not int8_available(dev):
            raise ValueError(f"int8 weights need torch's x86/fbgemm int8 kernels on the CPU; not available on {dev}")
        self.device = dev
        self.weights = weights
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        self.table: Tensor | None = None  # (V, 4H): layer-0 input contribution per token, biases folded in
        self.fused: list[Callable[[Tensor], Tensor]] = []  # layer l: [input part, h] -> gates (i, f, o, 2g)
        # the g rows are doubled, so one sigmoid serves all four gates: tanh(g) = 2 sigmoid(2g) - 1 (``_cell``)
        g_scale = torch.cat([torch.ones(3 * H), torch.full((H,), 2.0)]).to(dev)
        with torch.no_grad():
            for layer in range(c.num_layers):
                w_ih = getattr(model.lstm, f"weight_ih_l{layer}")[order]  # (4H, in)
                w_hh = getattr(model.lstm, f"weight_hh_l{layer}")[order]  # (4H, H)
                b = (getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}"))[order]
                if layer == 0 and c.input_kind == "tokens":
                    emb = model.embed.weight if model.embed is not None else None
                    tok_w = w_ih[:, : (c.embed_size or c.input_size)]  # (4H, E)
                    table = (emb @ tok_w.T) if emb is not None else tok_w.T.clone()  # (V, 4H)
                    self.table = (table + b).float().contiguous() * g_scale
                    self.fused.append(_affine(torch.cat([w_ih[:, tok_w.shape[1] :], w_hh], dim=1) * g_scale[:, None],
                                              None, weights))
                else:
                    self.fused.append(_affine(torch.cat([w_ih, w_hh], dim=1) * g_scale[:, None], b * g_scale, weights))
            self.out = _affine(model.out.weight, model.out.bias, weights)
        self._lstm = _quantized_lstm(model.lstm) if weights == "int8" else model.lstm
        self._graphs: dict[int, _Graph] = {}
        self._use_graph = cuda_graph and dev.type == "cuda"

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        return self.model.initial_state(batch_size, device or self.device)

    @torch.no_grad()
    def forward(self, inputs: Tensor, state: LSTMState | None = None,
                controls: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """Whole sequences (priming): inputs (B, T[, D]), controls (B, T, C) -> params (B, T, P), state.
        Runs the model's ``nn.LSTM`` (float32, bfloat16) or its dynamic-quantized copy (int8)."""
        if self.weights != "int8":
            return self.model.forward(inputs, state, controls)
        x = self.model.embed_inputs(inputs, controls)  # (B, T, E + C)
        state = state if state is not None else self.initial_state(inputs.shape[0])
        y, (h, c) = self._lstm(x, (state.h, state.c))  # (B, T, H)
        B, T, H = y.shape
        return self.out(y.reshape(B * T, H)).view(B, T, -1), LSTMState(h, c)

    @torch.no_grad()
    def prime(self, inputs: Tensor, state: LSTMState | None = None,
              controls: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """``forward`` when only the last step's params matter (priming): -> params (B, P), state. The output
        layer runs on the last step alone."""
        if self.weights != "int8":
            params, state = self.model.forward(inputs, state, controls)
            return params[:, -1], state
        x = self.model.embed_inputs(inputs, controls)
        state = state if state is not None else self.initial_state(inputs.shape[0])
        y, (h, c) = self._lstm(x, (state.h, state.c))
        return self.out(y[:, -1]), LSTMState(h, c)

    @torch.no_grad()
    def forward_by_steps(self, inputs: Tensor, state: LSTMState | None = None,
                         controls: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """``forward`` computed one ``step`` at a time: the path that sampling takes (teacher-forced evaluation)."""
        params = []
        for t in range(inputs.shape[1]):
            p, state = self.step(inputs[:, t], state, None if controls is None else controls[:, t])
            params.append(p)
        assert state is not None
        return torch.stack(params, 1), state

    __call__ = forward

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
        hs, cs = state.h.unbind(0), state.c.unbind(0)
        h_new, c_new = [], []
        if controls is not None and controls.dtype != torch.float32:
            controls = controls.float()
        x: Tensor = inputs
        for layer, fused in enumerate(self.fused):
            h, c = hs[layer], cs[layer]  # (B, H)
            if layer == 0 and self.table is not None:
                xin = torch.cat([controls, h], dim=1) if self.config.control_size else h  # type: ignore[list-item]
                gates = fused(xin).add_(self.table.index_select(0, inputs))
            elif layer == 0:
                parts = [inputs.float()] + ([controls.float()] if self.config.control_size else []) + [h]  # type: ignore[union-attr]
                gates = fused(torch.cat(parts, dim=1))
            else:
                gates = fused(torch.cat([x, h], dim=1))
            x, c = _cell(gates, c, H)
            h_new.append(x)
            c_new.append(c)
        return self.out(x), LSTMState(torch.stack(h_new), torch.stack(c_new))


# from this many cell values (B * H) on, tanh(c') is computed as 2 sigmoid(2c') - 1: torch's CPU tanh costs about
# 2 ns a value against sigmoid's 0.4 (64 x 512: ~60 us against ~25 us for the four ops), and below it the extra
# ops' fixed cost is more than tanh's (batch 1)
_TANH_BY_SIGMOID_FROM = 4096


def _cell(gates: Tensor, c: Tensor, H: int) -> tuple[Tensor, Tensor]:
    """LSTM cell from gates (B, 4H) ordered (i, f, o, 2g) and the cell c (B, H) -> (h, c), in place in ``gates``:
    c' = f c + i tanh(g) = f c + 2 i sigmoid(2g) - i; h' = o tanh(c') (= o (2 sigmoid(2c') - 1) for large batches)."""
    i, f, o, s = gates.sigmoid_().view(gates.shape[0], 4, H).unbind(1)
    c_new = torch.addcmul(f * c, i, s, value=2.0).sub_(i)
    if c_new.numel() >= _TANH_BY_SIGMOID_FROM:
        h_new = c_new.mul(2.0).sigmoid_().mul_(2.0).sub_(1.0).mul_(o)
    else:
        h_new = o * torch.tanh(c_new)
    return h_new, c_new


def _quantized_lstm(lstm: torch.nn.LSTM) -> torch.nn.Module:
    """A copy of ``lstm`` with int8 per-channel weights, activations quantized per step (torch's dynamic LSTM)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantization API warns of its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(torch.nn.Sequential(lstm), {torch.nn.LSTM: per_channel_dynamic_qconfig},
                                dtype=torch.qint8)[0]


@torch.no_grad()
def int8_divergence(model: RecurrentModel, first: int, controls: Tensor | None = None, steps: int = 128,
                    seed: int = 0) -> float:
    """Mean KL(float32 || int8) of the next-token distributions, nats per step, along ``steps`` tokens that the
    int8 step samples from token ``first`` (controls (C,) held fixed): how far int8 moves the model."""
    fast = FastStep(model, weights="int8")
    gen = torch.Generator().manual_seed(seed)
    ctrl = None if controls is None else controls.float().view(1, -1)
    tokens, q_logps, state = [first], [], None
    for _ in range(steps):
        params, state = fast.step(torch.tensor(tokens[-1:]), state, ctrl)
        q_logps.append(torch.log_softmax(params[0], -1))
        tokens.append(int(torch.multinomial(q_logps[-1].exp(), 1, generator=gen)))
    seq = torch.tensor([tokens[:-1]])
    p_logp = torch.log_softmax(model.forward(seq, None, None if ctrl is None else ctrl.expand(1, steps, -1))[0][0], -1)
    return float((p_logp.exp() * (p_logp - torch.stack(q_logps))).sum(-1).mean())


def choose_weights(model: RecurrentModel, first: int, controls: Tensor | None = None) -> Weights:
    """int8 where it runs and ``int8_divergence`` is at most ``INT8_KL_TOLERANCE``; else float32."""
    if model.config.input_kind != "tokens" or not int8_available(next(model.parameters()).device):
        return "float32"
    return "int8" if int8_divergence(model, first, controls) <= INT8_KL_TOLERANCE else "float32"


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
