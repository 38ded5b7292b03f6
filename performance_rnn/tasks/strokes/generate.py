"""Kanji-like pen drawings from the stroke checkpoint, through the one sampler, and an SVG/PNG grid.

    perfrnn strokes -o out.svg --temperature 0.4 --seed 1 [--partial start.json]

``--partial`` is a JSON list of stroke-3 rows ``[[dx, dy, p], ...]`` in KanjiVG units (109 x 109 canvas,
y down, first row measured from the top-left corner, p = 1 when the pen lifts after the point); every sample
continues it. Drawings come back as stroke-3 in the same units.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from performance_rnn import sampling
from performance_rnn.checkpoint import build_model, load_raw
from performance_rnn.codecs.strokes import S0, scale, stroke3_to_lines, stroke3_to_stroke5
from performance_rnn.config import SamplingConfig
from performance_rnn.errors import CheckpointError, CodecError, PerformanceRNNError
from performance_rnn.heads.mixture import StrokeMixtureHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.strokes.defaults import DEFAULTS

log = logging.getLogger(__name__)

MAX_POINTS = 250  # a drawing that has not ended by then is cut (KanjiVG's longest is 81 points)


@dataclass
class StrokeModel:
    model: RecurrentModel
    head: StrokeMixtureHead
    factor: float  # KanjiVG units per model unit
    canvas: float
    meta: dict[str, Any]


def load_stroke_model(path: str | os.PathLike[str] = DEFAULTS.checkpoint, device: str = "cpu") -> StrokeModel:
    ckpt = load_raw(path)
    codec = ckpt["codec"]
    if ckpt["kind"] != "strokes" or codec.get("name") != "strokes":
        raise CheckpointError(f"{path}: a {ckpt['kind']!r} checkpoint, not a strokes one")
    head = StrokeMixtureHead(int(codec["num_mixtures"]), str(codec.get("sigma_rule", "sqrt")))
    model = build_model(ckpt, device)
    if model.config.output_size != head.num_params or model.config.input_size != 5:
        raise CheckpointError(f"{path}: model shape does not match a {head.num_mixtures}-mixture stroke head")
    return StrokeModel(model, head, float(codec["scale_factor"]), float(codec.get("canvas", 109.0)),
                       dict(ckpt.get("meta", {})))


def parse_partial(rows: Any) -> np.ndarray:
    """JSON-like stroke-3 rows -> (N, 3) float32; CodecError for anything else."""
    try:
        arr = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"a partial drawing must be a list of [dx, dy, p] rows: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0 or not np.isfinite(arr).all():
        raise CodecError(f"a partial drawing must be a non-empty list of finite [dx, dy, p] rows, "
                         f"got shape {arr.shape}")
    if not np.isin(arr[:, 2], (0.0, 1.0)).all():
        raise CodecError("the pen value p of a partial drawing must be 0 or 1")
    return arr


def generate_strokes(
    ckpt: StrokeModel | str | os.PathLike[str],
    n: int = 16,
    temperature: float = 0.4,
    seed: int = 0,
    partial: Sequence[Sequence[float]] | np.ndarray | None = None,
    max_points: int = MAX_POINTS,
) -> list[np.ndarray]:
    """``n`` drawings as stroke-3 (N_i, 3) float32 arrays in KanjiVG units, one sampler batch.

    Stream i uses seed ``seed + i``. With ``partial``, each drawing is the partial one followed by its
    continuation."""
    sm = ckpt if isinstance(ckpt, StrokeModel) else load_stroke_model(ckpt)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = next(sm.model.parameters()).device
    start = parse_partial(partial) if partial is not None else np.zeros((0, 3), np.float32)
    primer = torch.from_numpy(np.vstack([S0, stroke3_to_stroke5(scale(start, sm.factor))])).to(device)
    cfg = SamplingConfig(temperature=temperature)
    rows: list[list[np.ndarray]] = [[] for _ in range(n)]
    steps = sampling.generate(sm.model, sm.head, [primer] * n, [cfg] * n,
                              sampling.generators_from_seeds([seed + i for i in range(n)]),
                              max_steps=max_points, stop=lambda t, out: out[:, 4] > 0.5)
    for outputs, active in steps:
        out = outputs.cpu().numpy()
        for i in np.flatnonzero(active.numpy()):
            if out[i, 4] < 0.5:
                rows[i].append(out[i])
    drawings = []
    for r in rows:
        s3 = np.array([[x[0], x[1], float(x[3] > 0.5)] for x in r], dtype=np.float32).reshape(-1, 3)
        s3[:, :2] *= sm.factor
        drawings.append(np.vstack([start, s3]).astype(np.float32))
    return drawings


def iter_strokes(
    sm: StrokeModel,
    partial: Sequence[Sequence[float]] | np.ndarray,
    temperature: float = 0.4,
    seed: int = 0,
    max_points: int = MAX_POINTS,
) -> Iterator[np.ndarray]:
    """The continuation of ``partial`` (stroke-3, KanjiVG units) one stroke at a time, as it is sampled: each
    item is a (k, 3) float32 stroke-3 block ending where the pen lifts (the last block may end without a lift
    when the drawing ends or reaches ``max_points``). Joined, the blocks are ``generate_strokes(sm, 1,
    temperature, seed, partial, max_points)[0]`` without its ``partial`` rows.

    ``partial`` is checked before this returns (CodecError for a bad shape), not on the first ``next``."""
    start = parse_partial(partial)
    device = next(sm.model.parameters()).device
    primer = torch.from_numpy(np.vstack([S0, stroke3_to_stroke5(scale(start, sm.factor))])).to(device)
    return _sample_strokes(sm, primer, SamplingConfig(temperature=temperature), seed, max_points)


def _sample_strokes(sm: StrokeModel, primer: torch.Tensor, cfg: SamplingConfig, seed: int,
                    max_points: int) -> Iterator[np.ndarray]:
    block: list[list[float]] = []
    for outputs, active in sampling.generate(sm.model, sm.head, [primer], [cfg], sampling.generators_from_seeds([seed]),
                                             max_steps=max_points, stop=lambda t, out: out[:, 4] > 0.5):
        out = outputs[0].cpu().numpy()
        if not bool(active[0]) or out[4] >= 0.5:
            break
        block.append([float(out[0]) * sm.factor, float(out[1]) * sm.factor, float(out[3] > 0.5)])
        if out[3] > 0.5:
            yield np.asarray(block, dtype=np.float32)
            block = []
    if block:
        yield np.asarray(block, dtype=np.float32)


def render_png(drawings: Sequence[np.ndarray], path: str | os.PathLike[str], cols: int = 4, cell: int = 128,
               box: float | None = 109.0) -> None:
    """The grid as PNG (needs Pillow)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # optional: SVG needs nothing
        raise PerformanceRNNError("PNG output needs Pillow (pip install pillow); SVG works without it") from exc
    cols = max(1, min(cols, len(drawings)))
    rows = -(-len(drawings) // cols)
    img = Image.new("RGB", (cols * cell, rows * cell), "white")
    draw = ImageDraw.Draw(img)
    margin = cell * 0.08
    for i, d in enumerate(drawings):
        lines = stroke3_to_lines(d)
        if not lines:
            continue
        pts = np.concatenate(lines)
        lo, span = (np.zeros(2), box) if box else (pts.min(0), float(max(pts.max(0) - pts.min(0))) or 1.0)
        k = (cell - 2 * margin) / span
        ox, oy = (i % cols) * cell + margin, (i // cols) * cell + margin
        for line in lines:
            xy = [((px - lo[0]) * k + ox, (py - lo[1]) * k + oy) for px, py in line]
            if len(xy) > 1:
                draw.line(xy, fill="black", width=max(1, cell // 40), joint="curve")
    img.save(path, format="PNG")  # by name, not by extension: the path may be a temporary file
