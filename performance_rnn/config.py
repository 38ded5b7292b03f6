"""Typed, frozen configs. Each field says why it has its default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """An LSTM over a sequence of inputs (token ids or float vectors), with optional per-step controls."""

    input_kind: str = "tokens"  # "tokens" (music events, characters) or "vectors" (pen strokes)
    input_size: int = 388  # vocabulary size for tokens, vector width for vectors
    embed_size: int = 0  # 0: one-hot-equivalent input (an embedding of width 4*hidden folded into the gates)
    hidden_size: int = 512  # Magenta's performance_rnn: 3 x 512
    num_layers: int = 3
    control_size: int = 0  # 21 for Magenta's optional multi-conditioning; 0 = unconditioned
    output_size: int = 388  # the head's parameter count per step
    dropout: float = 0.0  # between LSTM layers when training (Magenta: none)

    def __post_init__(self) -> None:
        if self.input_kind not in ("tokens", "vectors"):
            raise ValueError(f"input_kind must be 'tokens' or 'vectors', got {self.input_kind!r}")
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class SamplingConfig:
    """How one stream is sampled."""

    temperature: float = 1.0  # logits / T; 0 means greedy (argmax / mode)
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 10.0:
            raise ValueError(f"temperature must be in range 0..10, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in range (0, 1], got {self.top_p}")
