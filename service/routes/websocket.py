"""``/api/live``: one listener's live stream over a WebSocket, with controls mid-stream.

Protocol (JSON text frames). The client opens with ``{"type": "start", ...}`` (``LiveStart``: model, seed,
temperature, top_k, top_p, density, key, primer_pitches, max_seconds; ``model`` names a music model, the default
without it). The server answers ``started`` (with the model's name) and then one ``note`` message per note-on/off
(``LiveNote``): ``t`` is music time, ``at`` the wall-clock due time since the stream started (pauses and the first
token's lag included: the port playback's timeline, ``service.playback.Timeline``). The model's engine generates at
most ``lookahead_s`` ahead of the wall clock, so notes arrive at musical pace, up to ``lookahead_s`` before they
are due: a client schedules each at ``at`` on its own clock from its ``started``. Mid-stream the client may send
``{"type": "control", "temperature": 0.8, "density": 4, "key": "Am"}`` (only the fields sent change; null removes
density/key), ``pause``, ``resume`` or ``stop``. The stream ends with note-offs for every sounding note, then
``{"type": "end", "reason": "stopped" | "finished"}`` and close code 1000. Errors: ``{"type": "error", ...}``; a
refused start closes with 1008 (bad request) or 1013 (overloaded, model unavailable), after an error message whose
``status`` is the HTTP status the same failure gets (service/errors.py). A message that is not JSON (or nested too
deeply to read) gets an error and changes nothing. Should the engine fail the stream, the client gets an error
(status 503), note-offs and ``end`` with reason ``error``.

Bounds: a live slot is taken only by a valid start message, which must come within ``live_start_timeout_s``;
the server stops reading a client whose replies pile up unsent, and drops one that reads nothing for
``live_send_timeout_s`` (its engine stream is freed at once, as for a client that disconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from performance_rnn.codecs.performance import TimedNote
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import EngineBusy, Stream
from service.deps import RuntimeDep
from service.errors import ModelUnavailable, Overloaded, ServiceError, status_of
from service.playback import Timeline
from service.schemas import LiveCommand, LiveControl, LiveNote, LiveStart
from service.streams import MusicBackend, control_vector_for, music_spec

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

MAX_OUTBOX = 32  # replies waiting to be sent: beyond this the client's messages are not read until it reads
TICK_S = 0.01  # how often the token queue is drained (well under the engine's lookahead)
BAD_REQUEST, OVERLOADED = 1008, 1013  # WebSocket close codes


@router.websocket("/live")
async def live(ws: WebSocket, rt: RuntimeDep) -> None:
    """Stream live music to this client; see the module docstring for the protocol."""
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await LiveSocket(ws, rt).run()


class LiveSocket:
    def __init__(self, ws: WebSocket, rt: RuntimeDep, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ws, self.rt = ws, rt
        self.clock = clock  # the engine's clock
        self.outbox: list[dict[str, Any]] = []  # replies from the reader, sent by the one writer
        self.gone = self.stop = False
        self.pause: bool | None = None  # a requested pause (True) or resume (False) not yet handled
        self.paused = False
        self.failure: str | None = None  # why the stream must end early (a reader failure)
        self.state: dict[str, Any] = {}  # the sampling and controls in force
        self.music: MusicBackend | None = None  # the model the start message chose, with its engine

    async def run(self) -> None:
        rt = self.rt
        try:
            rt.music()  # without the default music model there is nothing to stream: say so at once
        except ModelUnavailable as exc:
            return await self._refuse(OVERLOADED, status_of(exc), str(exc))
        start = await self._start()  # no slot is held while a client dawdles
        if start is None:
            return None
        try:
            rt.live.acquire()
        except Overloaded as exc:
            return await self._refuse(OVERLOADED, status_of(exc), str(exc))
        try:
            opened = await self._open(start)
            if opened is not None:
                try:
                    await self._play(*opened)
                finally:
                    opened[0].close()  # frees the engine row whatever happened
        finally:
            rt.live.release()

    async def _open(self, start: LiveStart) -> tuple[Stream, LiveStart] | None:
        """Open the stream; None when refused (the socket is then closed)."""
        rt = self.rt
        limit = rt.settings.max_live_seconds
        try:
            self.music = rt.music(start.model)
            spec = music_spec(self.music.model, seed=start.seed, sampling=start.sampling(), primer=start.primer(),
                              density=start.density, key=start.key, lookahead_s=rt.settings.lookahead_s,
                              max_seconds=min(start.max_seconds or limit, limit))
            return self.music.engine.open(spec), start
        except (ServiceError, EngineBusy) as exc:
            status = status_of(exc)
            await self._refuse(OVERLOADED if status in (429, 503) else BAD_REQUEST, status, str(exc))
        return None

    async def _start(self) -> LiveStart | None:
        timeout = self.rt.settings.live_start_timeout_s
        try:
            msg = await asyncio.wait_for(self._receive(), timeout)
        except TimeoutError:
            await self._refuse(BAD_REQUEST, 408, f"no start message within {timeout:g} s")
            return None
        if isinstance(msg, Unreadable):
            await self._refuse(BAD_REQUEST, 400, msg.reason)
            return None
        try:
            return LiveStart.model_validate(msg)
        except ValidationError as exc:
            await self._refuse(BAD_REQUEST, 422, _summary(exc))
            return None

    async def _play(self, stream: Stream, start: LiveStart) -> None:
        assert self.music is not None
        mm = self.music.model
        deadline = self.clock() + self.rt.settings.live_start_timeout_s
        while not stream.started_at:  # admitted at the engine's next step
            if stream.closed.is_set() or self.clock() > deadline:
                detail = stream.error or "the engine did not take the stream: try again later"
                await self._refuse(OVERLOADED, 503, detail)
                return
            await asyncio.sleep(0.001)
        self.state = {"temperature": start.temperature, "top_k": start.top_k, "top_p": start.top_p,
                      "density": start.density, "key": start.key}
        await self._send({"type": "started", "lookahead_s": stream.spec.lookahead_s,
                          "max_seconds": stream.spec.max_seconds, "model": self.music.name,
                          "conditioned": mm.conditioned, **self.state})
        reader = asyncio.create_task(self._read(stream))
        timeline = Timeline(stream, mm.codec, clock=self.clock)
        try:
            reason = await self._write(stream, timeline)
        finally:
            reader.cancel()
        if reason == "disconnected":
            return
        if reason == "error":
            await self._send({"type": "error", "status": 503 if stream.error else 400,
                              "detail": stream.error or self.failure or "the stream failed"})
        now = timeline.now()
        # nothing is left sounding on the client: a stopped stream releases now, a finished one when its music ends
        end = now if reason != "finished" else max(now, timeline.end_s())
        for ev in timeline.release_all():
            await self._send(_note(ev, end))
        await self._send({"type": "end", "reason": reason})
        await self._close(1000)

    async def _write(self, stream: Stream, timeline: Timeline) -> str:
        while not self.gone:
            stopping, failed = self.stop, self.failure is not None
            while self.outbox:  # replies first: a stop right after a message still answers that message
                await self._send(self.outbox.pop(0))
            if failed:
                return "error"
            if stopping:
                return "stopped"
            if self.pause is not None:
                await self._toggle_pause(stream, timeline)
            if not self.paused:  # while paused the queue is left alone; resuming continues from it
                events, ended = [], False
                while True:
                    try:
                        tok = stream.tokens.get_nowait()
                    except queue.Empty:
                        break
                    if tok is None:
                        ended = True
                        break
                    events.extend(timeline.feed(tok))
                for ev in events:
                    await self._send(_note(ev, timeline.due(ev)))
                if ended:
                    return "error" if stream.error else "finished"
            await asyncio.sleep(TICK_S)
        return "disconnected"

    async def _toggle_pause(self, stream: Stream, timeline: Timeline) -> None:
        want, self.pause = self.pause, None
        if want == self.paused:
            return
        self.paused = bool(want)
        if self.paused:
            stream.pause()
            now = timeline.now()
            for ev in timeline.release_all():
                await self._send(_note(ev, now))
        else:
            stream.resume()
        await self._send({"type": "paused" if self.paused else "resumed"})

    async def _read(self, stream: Stream) -> None:
        try:
            while not self.stop:
                # the client is not reading its replies: stop reading its messages until it does
                while len(self.outbox) >= MAX_OUTBOX and not (self.gone or self.stop):  # noqa: ASYNC110
                    await asyncio.sleep(TICK_S)
                msg = await self._receive()
                if isinstance(msg, Unreadable):
                    self.outbox.append({"type": "error", "status": 400, "detail": msg.reason})
                    continue
                try:
                    self._handle(stream, msg)
                except (ValidationError, ServiceError, ValueError) as exc:
                    detail = _summary(exc) if isinstance(exc, ValidationError) else str(exc)
                    self.outbox.append({"type": "error", "status": 422, "detail": detail})
        except WebSocketDisconnect:
            self.gone = True
        except Exception as exc:  # whatever it was, the stream ends properly: error, note-offs, end
            log.exception("live stream reader failed")
            self.failure = f"the server could not handle a message ({type(exc).__name__})"

    def _handle(self, stream: Stream, msg: Any) -> None:
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "control":
            self._control(stream, LiveControl.model_validate(msg))
        elif kind in ("pause", "resume", "stop"):
            LiveCommand.model_validate(msg)
            if kind == "stop":
                self.stop = True
            else:
                self.pause = kind == "pause"
        else:
            raise ValueError(f"unknown message type {kind!r}: use control, pause, resume or stop")

    def _control(self, stream: Stream, change: LiveControl) -> None:
        sent = change.model_fields_set - {"type"}
        new = {**self.state, **{k: getattr(change, k) for k in sent}}
        if new["temperature"] is None:
            new["temperature"] = self.state["temperature"]
        sampling = SamplingConfig(new["temperature"], new["top_k"], new["top_p"])
        assert self.music is not None
        controls = control_vector_for(self.music.model, new["density"], new["key"])
        stream.set_sampling(sampling)
        if sent & {"density", "key"}:
            stream.set_controls(controls)
        self.state = new
        self.outbox.append({"type": "control", **new})

    async def _receive(self) -> Any:
        """The next message, parsed (``Unreadable`` for a frame that is not JSON). Raises WebSocketDisconnect."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        return parse_message(text)

    async def _send(self, msg: dict[str, Any]) -> None:
        if self.gone:
            return
        try:  # a client that reads nothing fills the socket's buffers: then the send waits, up to the timeout
            await asyncio.wait_for(self.ws.send_json(msg), self.rt.settings.live_send_timeout_s)
        except Exception:  # noqa: BLE001 - the client went away mid-send, or stopped reading
            self.gone = True

    async def _refuse(self, code: int, status: int, detail: str) -> None:
        await self._send({"type": "error", "status": status, "detail": detail})
        await self._close(code)

    async def _close(self, code: int) -> None:
        if self.gone:
            return
        try:
            await self.ws.close(code)
        except Exception:  # noqa: BLE001 - already closed by the client
            self.gone = True


MAX_DEPTH = 32  # JSON nesting; no valid message nests deeper than 2


class Unreadable:
    """A client message that is not a JSON value this server reads; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_message(text: str) -> Any:
    """A client message's JSON value, or ``Unreadable``. Nesting is bounded before parsing (a deeply nested
    value would exhaust the parser's recursion)."""
    if _depth_over(text, MAX_DEPTH):
        return Unreadable(f"the message is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return Unreadable("the message is not JSON")


def _depth_over(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (a linear scan; escapes respected)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _note(ev: TimedNote, at: float) -> dict[str, Any]:
    return LiveNote(t=round(ev.time_s, 4), at=round(at, 4), on=ev.on, pitch=ev.pitch,
                    velocity=ev.velocity).model_dump()


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
