"""Held-out figures for the sibling models, and the export of a training run to a shipped checkpoint.

    python -m performance_rnn.evaluate_siblings text checkpoints/text.pt
    python -m performance_rnn.evaluate_siblings strokes checkpoints/strokes.pt [checkpoints/strokes-baseline.pt]

Text: mean NLL per character (nats and bits) on the test plays, state carried through each play.
Strokes: mean NLL per point on the test characters (normalised units, see ``performance_rnn.heads.mixture``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from performance_rnn.batches import Batch
from performance_rnn.checkpoint import atomic_save, build_model, load_raw, model_payload
from performance_rnn.errors import DataError
from performance_rnn.heads import CategoricalHead
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.model import RecurrentModel


def export_checkpoint(run_checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], **extra: Any) -> None:
    """A training run's ``last.pt`` -> a half-precision checkpoint without optimizer or RNG state."""
    ckpt = load_raw(run_checkpoint)
    model = build_model(ckpt)
    keep = {k: ckpt[k] for k in ("train_state", "meta", "strokes") if k in ckpt}
    atomic_save(model_payload(ckpt["kind"], model, ckpt["codec"], half=True, **keep, **extra), out)


@torch.no_grad()
def text_nll(model: RecurrentModel, plays: dict[str, np.ndarray], chunk: int = 2048) -> tuple[float, int]:
    """Mean NLL (nats/char) of every character after each play's first, state carried through the play."""
    head = CategoricalHead(model.config.output_size)
    total, count = 0.0, 0
    for ids in plays.values():
        x = torch.from_numpy(ids)
        state = None
        for s in range(0, len(ids) - 1, chunk):
            inp, tgt = x[s:s + chunk], x[s + 1:s + chunk + 1]
            params, state = model(inp[:len(tgt)].unsqueeze(0), state)
            total -= float(head.log_prob(params[0], tgt).double().sum())
            count += len(tgt)
    return total / max(1, count), count


def ngram_nll(train_text: str, plays: dict[str, str], order: int = 5) -> float:
    """Baseline: an interpolated Witten-Bell character n-gram (add-one unigram at the bottom), nats/char."""
    vocab = set(train_text).union(*map(set, plays.values()))
    counts: list[Counter[str]] = [Counter() for _ in range(order + 1)]  # counts[k]: k-grams
    for k in range(1, order + 1):
        counts[k].update(train_text[i:i + k] for i in range(len(train_text) - k + 1))
    ctx_total: list[Counter[str]] = [Counter() for _ in range(order + 1)]  # context h (len k-1): sum C(hc)
    ctx_types: list[Counter[str]] = [Counter() for _ in range(order + 1)]  # distinct c after h
    for k in range(2, order + 1):
        for g, c in counts[k].items():
            ctx_total[k][g[:-1]] += c
            ctx_types[k][g[:-1]] += 1
    n_uni = sum(counts[1].values())
    total, n = 0.0, 0
    for text in plays.values():
        for i in range(1, len(text)):
            ch = text[i]
            p = (counts[1][ch] + 1) / (n_uni + len(vocab))
            for k in range(2, order + 1):
                if i - k + 1 < 0:
                    break
                h = text[i - k + 1:i]
                t = ctx_types[k][h]
                if t:
                    p = (counts[k][h + ch] + t * p) / (ctx_total[k][h] + t)
            total -= math.log(p)
            n += 1
    return total / max(1, n)


def evaluate_text(path: str | os.PathLike[str], split: str = "test", baseline: bool = True) -> dict[str, Any]:
    from performance_rnn.tasks.text.data import PLAY_SEPARATOR, build

    data = build()
    model = build_model(load_raw(path))
    nll, n = text_nll(model, data.plays[split])
    res: dict[str, Any] = {"split": split, "plays": sorted(data.plays[split]), "chars": n,
                           "nats_per_char": round(nll, 4), "bits_per_char": round(nll / math.log(2), 4)}
    if baseline:
        decode = data.codec.decode
        train_text = PLAY_SEPARATOR.join(decode(ids) for ids in data.plays["train"].values())
        base = ngram_nll(train_text, {k: decode(v) for k, v in data.plays[split].items()})
        res["baseline_5gram_witten_bell_nats_per_char"] = round(base, 4)
    return res


@torch.no_grad()
def stroke_nll(model: RecurrentModel, head: StrokeMixtureHead, batches: Iterator[Batch]) -> dict[str, float]:
    """NLL per scored step (each point and the end-of-drawing step), split into offsets and pen parts."""
    pen_sum = off_sum = 0.0
    steps = drawings = 0
    for b in batches:
        params, _ = model(b.inputs)
        full = -head.log_prob(params, b.targets)  # (B, T)
        pen = -(torch.log_softmax(params[..., :3].float(), -1) * b.targets[..., 2:5]).sum(-1)
        mask = b.mask.float()
        pen_sum += float((pen * mask).sum())
        off_sum += float(((full - pen) * mask).sum())
        steps += int(mask.sum())
        drawings += len(mask)
    return {"nll_per_point": round((pen_sum + off_sum) / steps, 4), "offset_nll_per_point": round(off_sum / steps, 4),
            "pen_nll_per_point": round(pen_sum / steps, 4), "nll_per_drawing": round((pen_sum + off_sum) / drawings, 2),
            "points": steps, "drawings": drawings}


def evaluate_strokes(paths: list[str], split: str = "test", cache: str | None = "data/kanjivg-rdp1.0.npz"
                     ) -> dict[str, Any]:
    from performance_rnn.tasks.strokes.data import MAX_POINTS, build

    data = build(cache=cache)
    res: dict[str, Any] = {"split": split, "scale_factor": round(data.factor, 4)}
    for path in paths:
        ckpt = load_raw(path)
        if abs(float(ckpt["codec"]["scale_factor"]) - data.factor) > 1e-3:
            raise DataError(f"{path}: trained with scale factor {ckpt['codec']['scale_factor']}, data has {data.factor}")
        head = StrokeMixtureHead(int(ckpt["codec"]["num_mixtures"]))
        res[str(path)] = stroke_nll(build_model(ckpt), head, data.eval_batches(split, 128, MAX_POINTS + 1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m performance_rnn.evaluate_siblings", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("text", "strokes"))
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--split", default="test", choices=("validation", "test"))
    ap.add_argument("--no-baseline", action="store_true", help="text: skip the n-gram baseline")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.kind == "text":
        res = {str(p): evaluate_text(p, args.split, not args.no_baseline) for p in args.checkpoints}
    else:
        res = evaluate_strokes(args.checkpoints, args.split)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
