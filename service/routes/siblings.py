"""The sibling models on the same sampler: Shakespeare-like text, and kanji-like pen strokes (JSON and SVG)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response

from performance_rnn.codecs.strokes import grid_svg
from performance_rnn.tasks.strokes.generate import StrokeModel, generate_strokes
from performance_rnn.tasks.text.generate import generate_text
from service.deps import RuntimeDep, StrokeModelDep, TextModelDep
from service.schemas import StrokesOut, StrokesRequest, StrokesSvgRequest, TextOut, TextRequest, error_responses

router = APIRouter()

ERRORS = error_responses(400, 413, 422, 429, 503)
SVG = "image/svg+xml"
MAX_COORD = 1e4  # a sample at a high temperature can fly off; JSON and SVG get finite, bounded numbers


@router.post("/text", tags=["text"], responses=ERRORS)
def text(body: TextRequest, rt: RuntimeDep, tm: TextModelDep) -> TextOut:
    """Continue ``prime`` with ``length`` characters of Shakespeare-like text."""
    with rt.siblings.take():
        out = generate_text(tm, body.prime, body.length, body.temperature, body.top_k, body.top_p, body.seed)
    return TextOut(prime=body.prime, text=out)


@router.post("/strokes", tags=["strokes"], responses=ERRORS)
def strokes(body: StrokesRequest, rt: RuntimeDep, sm: StrokeModelDep) -> StrokesOut:
    """Sample ``n`` kanji-like drawings as stroke-3 rows [dx, dy, pen_lifted] in KanjiVG units."""
    drawings = _sample(rt, sm, body)
    return StrokesOut(canvas=sm.canvas, drawings=[[[round(float(x), 2), round(float(y), 2), float(p > 0.5)]
                                                   for x, y, p in d] for d in drawings])


@router.post("/strokes/svg", tags=["strokes"], response_class=Response,
             responses={200: {"content": {SVG: {}}, "description": "an SVG grid of drawings"}, **ERRORS})
def strokes_svg(body: StrokesSvgRequest, rt: RuntimeDep, sm: StrokeModelDep) -> Response:
    """Sample ``n`` drawings and lay them out as an SVG grid."""
    drawings = _sample(rt, sm, body)
    return Response(grid_svg(drawings, body.cols, box=None if body.fit else sm.canvas), media_type=SVG)


def _sample(rt: RuntimeDep, sm: StrokeModel, body: StrokesRequest) -> list[np.ndarray]:
    partial = None if body.partial is None else [list(row) for row in body.partial]
    with rt.siblings.take():
        drawings = generate_strokes(sm, body.n, body.temperature, body.seed, partial)
    return [np.clip(np.nan_to_num(d, posinf=MAX_COORD, neginf=-MAX_COORD), -MAX_COORD, MAX_COORD) for d in drawings]
