"""Held-out figures of stroke checkpoints: mean NLL per point on a split's characters (normalised units, see
``performance_rnn.heads.mixture``), split into the offset and pen parts. ``perfrnn eval --task strokes``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from performance_rnn.batches import Batch
from performance_rnn.checkpoint import build_model, load_raw
from performance_rnn.errors import CheckpointError, DataError
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.strokes.data import MAX_POINTS, build

BATCH_SIZE = 128


@torch.no_grad()
def stroke_nll(model: RecurrentModel, head: StrokeMixtureHead, batches: Iterator[Batch]) -> dict[str, float]:
    """NLL per scored step (each point and the end-of-drawing step), split into offsets and pen parts."""
    device = next(model.parameters()).device
    pen_sum = off_sum = 0.0
    steps = drawings = 0
    for b in batches:
        if b.mask is None:
            raise ValueError("stroke evaluation needs masked batches (eval_batches gives them)")
        params, _ = model(b.inputs.to(device))
        targets, mask = b.targets.to(device), b.mask.to(device).float()
        full = -head.log_prob(params, targets)  # (B, T)
        pen = -(torch.log_softmax(params[..., :3].float(), -1) * targets[..., 2:5]).sum(-1)
        pen_sum += float((pen * mask).sum())
        off_sum += float(((full - pen) * mask).sum())
        steps += int(mask.sum())
        drawings += len(mask)
    return {"nll_per_point": round((pen_sum + off_sum) / steps, 4), "offset_nll_per_point": round(off_sum / steps, 4),
            "pen_nll_per_point": round(pen_sum / steps, 4), "nll_per_drawing": round((pen_sum + off_sum) / drawings, 2),
            "points": steps, "drawings": drawings}


def evaluate(checkpoints: Sequence[str | os.PathLike[str]], data: str | os.PathLike[str] | None,
             split: str = "test", device: str = "cpu") -> dict[str, Any]:
    """Every checkpoint's NLL on ``split`` of KanjiVG read through the cache file ``data`` (written on first use;
    None: converted afresh). DataError when a checkpoint was trained with another scale factor."""
    strokes = build(cache=None if data is None else Path(data))
    res: dict[str, Any] = {"task": "strokes", "split": split, "scale_factor": round(strokes.factor, 4),
                           "checkpoints": {}}
    for path in checkpoints:
        ckpt = load_raw(path)
        if ckpt["kind"] != "strokes":
            raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, not a strokes one")
        if abs(float(ckpt["codec"]["scale_factor"]) - strokes.factor) > 1e-3:
            raise DataError(f"{path}: trained with scale factor {ckpt['codec']['scale_factor']}, "
                            f"the data have {strokes.factor}")
        head = StrokeMixtureHead(int(ckpt["codec"]["num_mixtures"]), str(ckpt["codec"].get("sigma_rule", "sqrt")))
        batches = strokes.eval_batches(split, BATCH_SIZE, MAX_POINTS + 1)
        res["checkpoints"][str(path)] = stroke_nll(build_model(ckpt, device), head, batches)
    return res
