"""Offline renders: ``seconds`` of music as one engine stream run as fast as it goes, collected into notes."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence

from midi_io.notes import Note
from performance_rnn.engine import Stream, StreamFailed
from performance_rnn.tasks.music.generate import performance_notes
from service.errors import ClientGone, RenderTimeout
from service.schemas import RenderRequest
from service.streams import MusicBackend, music_spec

MAX_EVENTS_PER_S = 200.0  # an offline stream also stops after seconds * this many events (as generate_performances)


def render(music: MusicBackend, req: RenderRequest, primer: Sequence[Note] | None, *, timeout_s: float,
           cancelled: Callable[[], bool] = lambda: False) -> list[Note]:
    """``req.seconds`` of music as one offline engine stream; the primer is excluded unless asked for.

    Raises:
        InvalidRequest, EngineBusy, StreamFailed, RenderTimeout, ClientGone once ``cancelled()`` (the stream is
        closed in every case).
    """
    mm = music.model
    spec = music_spec(mm, seed=req.seed, sampling=req.sampling(), primer=primer, density=req.density,
                      key=req.key, lookahead_s=None, max_seconds=req.seconds)
    spec.max_steps = int(req.seconds * MAX_EVENTS_PER_S) + 16
    tokens = collect(music.engine.open(spec), timeout_s, cancelled)
    return performance_notes(mm, tokens, req.seconds, primer=primer, include_primer=req.include_primer)


def collect(stream: Stream, timeout_s: float, cancelled: Callable[[], bool] = lambda: False) -> list[int]:
    """Every token of an offline stream, closing it on the way out (at once if ``cancelled()``). Raises
    RenderTimeout, StreamFailed, ClientGone."""
    deadline = time.monotonic() + timeout_s
    out: list[int] = []
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            if cancelled():
                raise ClientGone("the client disconnected: render stopped")
            try:
                tok = stream.tokens.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                continue
            if tok is None:
                if stream.error is not None:
                    raise StreamFailed(stream.error)
                return out
            out.append(tok)
        raise RenderTimeout(f"the render did not finish within {timeout_s:g} s: try fewer seconds")
    finally:
        stream.close()
