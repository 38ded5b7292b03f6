"""Plain categorical sampling (temperature only), optionally through the keyboard mask, in one C pass per row.

``CategoricalHead.sample`` and ``KeyboardMask.sample`` take this path on the CPU when no stream is greedy or
filtered (``BatchSampling.plain``): the same distribution as their tensor ops (mask, temperature, softmax in
float64, inverse CDF on the same per-stream uniform, so the same tokens but where a uniform falls within rounding
of a boundary), at a fraction of their cost, which is mostly per-op overhead (``fast_sample.c`` says how).
The C part is built on first use (``midi_io.native``); without a compiler the tensor ops run, as before.
"""

from __future__ import annotations

import ctypes
import logging
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from midi_io import native

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fast_sample.c")
# from this many rows on, torch computes the exponentials (vectorised) and the C pass needs none; below it, the
# three tensor ops' fixed cost (several us each) is more than the rows' scalar exps (~2 us a row)
TORCH_EXP_FROM_ROWS = 8


@cache
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (logged once) where it cannot be built: the tensor ops are used instead."""
    try:
        lib = ctypes.CDLL(str(native.build(SOURCE, ["-O2", "-std=c11", "-shared", "-fPIC"], ["-lm"])))
    except (native.NativeBuildError, OSError) as exc:
        logger.info("sampling through tensor ops: the one-pass sampling kernel is not available (%s)", exc)
        return None
    i64, vp = ctypes.c_int64, ctypes.c_void_p
    lib.fs_sample.restype = None
    lib.fs_sample.argtypes = [i64, i64, vp, vp, vp, vp, vp, i64, i64, i64, vp, vp, vp, vp, vp]
    return lib


def available() -> bool:
    return _library() is not None


def usable(logits: Tensor) -> bool:
    """True when ``sample`` can take these logits (the CPU, and the kernel built)."""
    return logits.device.type == "cpu" and logits.dim() == 2 and available()


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def sample(logits: Tensor, temperature: Tensor, uniforms: Tensor, keyboard: tuple[Tensor, Tensor, int, int, int]
           | None = None, *, with_probs: bool = False) -> tuple[Tensor, Tensor | None]:
    """logits (B, V), temperature (B,) all > 0, uniforms (B,) in [0, 1) -> (tokens (B,) int64, the distribution
    each was drawn from (B, V) float64 when ``with_probs``, else None).

    ``keyboard`` = (start (B, 128) int64, step (B,) int64, NOTE_ON id, TIME_SHIFT id, number of TIME_SHIFTs): the
    keyboard mask's state, applied and advanced in place by the tokens (``performance_rnn.keyboard``).
    """
    lib = _library()
    if lib is None:
        raise RuntimeError("the sampling kernel is not available (see performance_rnn.heads.fast_sample.usable)")
    B, V = logits.shape
    x = logits.detach().float().contiguous()
    temp = temperature.detach().float().contiguous()
    if temp.shape != (B,) or uniforms.numel() != B:
        raise ValueError(f"need one temperature and one uniform per row: {B} rows, {temp.shape}, {uniforms.shape}")
    u = uniforms.detach().double().contiguous()
    w1 = wt = None
    if B >= TORCH_EXP_FROM_ROWS:
        shifted = x - x.amax(dim=1, keepdim=True)
        w1 = shifted.exp()
        if bool((temp != 1).any()):
            wt = shifted.div_(temp.unsqueeze(1)).exp_()
    start = step = None
    on0 = shift0 = shifts = 0
    if keyboard is not None:
        start, step, on0, shift0, shifts = keyboard
        if not (start.is_contiguous() and step.is_contiguous() and start.dtype == step.dtype == torch.int64
                and start.shape == (B, 128) and step.shape == (B,) and on0 + 256 <= V):
            raise ValueError("the keyboard state must be contiguous int64 (B, 128) and (B,), its keys within V")
    tokens = torch.empty(B, dtype=torch.int64)
    probs = torch.empty(B, V, dtype=torch.float64) if with_probs else None
    cdf = torch.empty(V, dtype=torch.float64)
    lib.fs_sample(B, V, x.data_ptr(), _ptr(w1), _ptr(wt), temp.data_ptr(), u.data_ptr(), on0, shift0, shifts,
                  _ptr(start), _ptr(step), tokens.data_ptr(), _ptr(probs), cdf.data_ptr())
    return tokens, probs
