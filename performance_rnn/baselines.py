"""The one count-based baseline for held-out NLL per token: interpolated absolute-discounting n-grams (order 1 is
the add-one unigram), over any integer tokens: music's event ids and text's character ids alike.

They score exactly the targets the LSTM scores (the same windows or plays, context limited to the window), so
the figures sit side by side in the model cards (``perfrnn eval --task music|text``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

DEFAULT_MAX_ORDER = 6  # the largest order ``perfrnn eval`` tries on validation (music events and text characters)


class NGram:
    """Interpolated absolute discounting (Ney et al.): each order discounts its counts by ``discount`` and
    hands the mass to the next lower order; order 0 is add-one smoothed over the vocabulary."""

    def __init__(self, order: int, vocab_size: int, discount: float = 0.75) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.vocab_size = vocab_size
        self.discount = discount
        self.counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order)]  # k: (k context + 1)-grams
        self.context: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order)]
        self.types: list[defaultdict[tuple[int, ...], int]] = [defaultdict(int) for _ in range(order)]
        self.total = 0  # tokens counted (the unigram's denominator, before add-one)

    def fit(self, sequences: Sequence[Sequence[int]]) -> NGram:
        for seq in sequences:
            seq = list(seq)
            for k in range(self.order):  # k = context length
                grams = Counter(tuple(seq[i - k : i + 1]) for i in range(k, len(seq)))
                self.counts[k].update(grams)
        self.context = [Counter() for _ in range(self.order)]  # recounted from all counts: fit may be called again
        self.types = [defaultdict(int) for _ in range(self.order)]
        for k in range(self.order):
            for gram, c in self.counts[k].items():
                self.context[k][gram[:-1]] += c
                self.types[k][gram[:-1]] += 1
        self.total = sum(self.counts[0].values())
        return self

    def prob(self, context: Sequence[int], token: int, order: int | None = None) -> float:
        """p(token | context) using at most ``order`` (default: the fitted order) tokens of n-gram."""
        p = (self.counts[0].get((token,), 0) + 1) / (self.total + self.vocab_size)
        for k in range(1, min(self.order, order or self.order)):
            if len(context) < k:
                break
            ctx = tuple(context[len(context) - k :])
            c_ctx = self.context[k].get(ctx, 0)
            if not c_ctx:
                break
            c = self.counts[k].get((*ctx, token), 0)
            p = max(c - self.discount, 0.0) / c_ctx + self.discount * self.types[k][ctx] / c_ctx * p
        return p

    def nll(self, windows: Iterable[Iterable[int]], order: int | None = None) -> float:
        """Mean -log p per predicted token; in each window every token after the first is predicted. ``order``
        scores as the n-gram of that lower order (one fit serves every order up to the fitted one)."""
        k = min(self.order, order or self.order)
        total, n = 0.0, 0
        for w in windows:
            w = list(w)
            for i in range(1, len(w)):
                total -= math.log(self.prob(w[max(0, i - k + 1) : i], w[i], k))
                n += 1
        return total / max(1, n)
