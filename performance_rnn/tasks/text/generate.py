"""Shakespeare-style text from the char-level checkpoint, through the one sampler.

    perfrnn text --prime "ROMEO:" --length 500 --temperature 0.8 --seed 1

prints the primer and its continuation to stdout (logs go to stderr). A primer with characters outside the
model's vocabulary raises CodecError naming them; the CLI prints that message and exits with status 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from performance_rnn import sampling
from performance_rnn.checkpoint import build_model, load_raw
from performance_rnn.codecs.text import TextCodec
from performance_rnn.config import SamplingConfig
from performance_rnn.errors import CheckpointError
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.text.defaults import DEFAULTS

log = logging.getLogger(__name__)

DEFAULT_PRIME = "\n"  # an empty primer starts as if at a line break (nanoGPT's default start)


@dataclass
class TextModel:
    model: RecurrentModel
    head: CategoricalHead
    codec: TextCodec
    meta: dict[str, Any]


def load_text_model(path: str | os.PathLike[str] = DEFAULTS.checkpoint, device: str = "cpu") -> TextModel:
    ckpt = load_raw(path)
    if ckpt["kind"] != "text":
        raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, not a text one")
    codec = TextCodec.from_dict(ckpt["codec"])
    model = build_model(ckpt, device)
    if model.config.output_size != codec.vocab_size:
        raise CheckpointError(f"{path}: model outputs {model.config.output_size} tokens, codec has {codec.vocab_size}")
    return TextModel(model, CategoricalHead(codec.vocab_size), codec, dict(ckpt.get("meta", {})))


def generate_text(
    ckpt: TextModel | str | os.PathLike[str],
    prime: str = "",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> str:
    """The continuation (without the primer) of ``prime``, ``length`` characters, deterministic per seed."""
    return "".join(iter_text(ckpt, prime, length, temperature, top_k, top_p, seed))


def iter_text(
    ckpt: TextModel | str | os.PathLike[str],
    prime: str = "",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    chunk: int = 1,
) -> Iterator[str]:
    """``generate_text`` as it is sampled: pieces of up to ``chunk`` characters (joined, the same text).

    The primer is checked before this returns (CodecError names unknown characters), not on the first ``next``."""
    tm = ckpt if isinstance(ckpt, TextModel) else load_text_model(ckpt)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    ids = tm.codec.encode(prime or DEFAULT_PRIME)  # CodecError names unknown characters
    return _sample_text(tm, ids, length, SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p), seed,
                        max(1, chunk))


def _sample_text(tm: TextModel, ids: list[int], length: int, cfg: SamplingConfig, seed: int,
                 chunk: int) -> Iterator[str]:
    if length == 0:
        return
    device = next(tm.model.parameters()).device
    primer = torch.tensor(ids, dtype=torch.long, device=device)
    out: list[int] = []
    for tokens, _ in sampling.generate(tm.model, tm.head, [primer], [cfg], sampling.generators_from_seeds([seed]),
                                       max_steps=length):
        out.append(int(tokens[0]))
        if len(out) >= chunk:
            yield tm.codec.decode(out)
            out = []
    if out:
        yield tm.codec.decode(out)
