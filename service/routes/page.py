"""What the web page streams: text as it is sampled, a drawing continued stroke by stroke, and a .mid primer
read into notes (which a live stream's ``primer_notes`` then takes).

The streams are NDJSON (``application/x-ndjson``): one JSON object per line, sent as soon as it exists. Input is
validated before the first byte (422 with the reason, like every other route); an error after that ends the
stream with an ``{"type": "error", "detail": ...}`` line.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, UploadFile
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from performance_rnn.errors import PerformanceRNNError
from performance_rnn.tasks.strokes.generate import iter_strokes
from performance_rnn.tasks.text.generate import iter_text
from service.deps import RuntimeDep, StrokeModelDep, TextModelDep
from service.schemas import MAX_PRIMER_NOTES, NoteModel, StrokesContinueRequest, TextRequest, error_responses

log = logging.getLogger(__name__)
router = APIRouter()

NDJSON = "application/x-ndjson"
ERRORS = error_responses(400, 413, 422, 429, 503)
STREAM_OUT: dict[int | str, dict[str, Any]] = {200: {"content": {NDJSON: {}}, "description": "one JSON object a line"}}
TEXT_CHUNK = 4  # characters a line: small enough to watch it being written
MAX_COORD = 1e4  # a sample at a high temperature can fly off; answers carry finite, bounded numbers


@router.post("/text/stream", tags=["text"], response_class=StreamingResponse, responses={**STREAM_OUT, **ERRORS})
def text_stream(body: TextRequest, rt: RuntimeDep, tm: TextModelDep) -> StreamingResponse:
    """``POST /api/text`` as it is generated: ``{"type": "text", "text": "..."}`` lines, then
    ``{"type": "end", "chars": N}``. Joined, the pieces are exactly what ``/api/text`` answers for the same body."""
    pieces = iter_text(tm, body.prime, body.length, body.temperature, body.top_k, body.top_p, body.seed,
                       chunk=TEXT_CHUNK)  # an unknown character in the prime is a 422 here, before streaming

    def lines() -> Iterator[dict[str, Any]]:
        chars = 0
        for piece in pieces:
            chars += len(piece)
            yield {"type": "text", "text": piece}
        yield {"type": "end", "chars": chars}

    return _ndjson(rt, lines)


@router.post("/strokes/continue", tags=["strokes"], response_class=StreamingResponse,
             responses={**STREAM_OUT, **ERRORS})
def strokes_continue(body: StrokesContinueRequest, rt: RuntimeDep, sm: StrokeModelDep) -> StreamingResponse:
    """Continue a drawing, one stroke a line as the model draws it. Lines: ``{"type": "start", "canvas": 109,
    "x", "y", "pen_down"}`` (where the pen is when the model takes over), then ``{"type": "stroke", "points":
    [[x, y], ...]}`` per stroke in absolute KanjiVG units (with ``pen_down``, the first stroke starts at that
    point: the model carries on the line), then ``{"type": "end", "strokes": k, "points": n}``."""
    strokes = iter_strokes(sm, body.stroke3(), body.temperature, body.seed, body.max_points)
    x, y = (float(v) for v in body.strokes[-1][-1])

    def lines() -> Iterator[dict[str, Any]]:
        nonlocal x, y
        yield {"type": "start", "canvas": sm.canvas, "x": x, "y": y, "pen_down": body.pen_down}
        down, count, points = body.pen_down, 0, 0
        for block in strokes:
            line = [[x, y]] if down else []
            for dx, dy, lifted in block:
                x, y = _bounded(x + float(dx)), _bounded(y + float(dy))
                line.append([round(x, 2), round(y, 2)])
                down = lifted < 0.5
            count, points = count + 1, points + len(block)
            yield {"type": "stroke", "index": count - 1, "points": line}
        yield {"type": "end", "strokes": count, "points": points}

    return _ndjson(rt, lines)


@router.post("/music/primer", tags=["music"], responses=error_responses(400, 413, 422, 429))
def read_primer(primer: Annotated[UploadFile, File(description="a .mid")], rt: RuntimeDep) -> list[NoteModel]:
    """The pitched notes of an uploaded .mid, its last ``max_primer_seconds`` (at most the last 2,000 notes),
    shifted to start at 0: pass them as ``primer_notes`` to a live stream or a render. Parsed as render uploads
    are: with a render slot, in a worker process, under the parse time limit."""
    with rt.renders.take():
        notes = rt.parser.parse(primer.file.read(), primer.filename or "upload.mid")
    if not notes:
        return []
    notes = sorted(notes, key=lambda n: (n.start_s, n.pitch))[-MAX_PRIMER_NOTES:]
    t0 = notes[0].start_s
    return [NoteModel(pitch=n.pitch, velocity=max(1, n.velocity), start_s=round(n.start_s - t0, 4),
                      end_s=round(max(n.end_s, n.start_s) - t0, 4)) for n in notes]


def _bounded(v: float) -> float:
    return float(np.clip(np.nan_to_num(v, posinf=MAX_COORD, neginf=-MAX_COORD), -MAX_COORD, MAX_COORD))


def _ndjson(rt: RuntimeDep, lines: Callable[[], Iterator[dict[str, Any]]]) -> StreamingResponse:
    """Stream ``lines()`` under a text/strokes slot, taken now (429 when none is free) and freed when the response
    ends, the client left or the sampler failed."""
    rt.siblings.acquire()
    once = threading.Lock()

    def release() -> None:
        if once.acquire(blocking=False):  # the stream's end and the response's end both call this
            rt.siblings.release()

    def body() -> Iterator[bytes]:
        try:
            for line in lines():
                yield (json.dumps(line, separators=(",", ":")) + "\n").encode()
        except (PerformanceRNNError, ValueError, RuntimeError) as exc:
            log.warning("stream failed: %s", exc)
            yield (json.dumps({"type": "error", "detail": str(exc)}) + "\n").encode()
        finally:
            release()

    return StreamingResponse(body(), media_type=NDJSON, background=BackgroundTask(release),
                             headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
