"""The engine: one worker thread owns the model and steps every active stream together in one batch.

Streams join and leave at any step, each with its own sampling settings, controls, RNG and LSTM state.
A live stream is generated at most ``lookahead_s`` (+ ``batch_slack_s``) of music ahead of its wall clock, so a
control change reaches the music within that; its clock starts (``started_at``) once its first lookahead of music
exists, so its opening notes are never late however many streams start at once; an offline stream
(``lookahead_s=None``) runs as fast as it can.
Consumers read a stream's tokens from a thread-safe queue; ``None`` marks its end (``Stream.error`` then says
why, if it failed).

A primer is fed in chunks of at most ``prime_chunk`` tokens per worker iteration, shortest primers first, with
every due stream stepped between chunks: a long primer delays the others by one chunk's forward pass, never by
its whole length. A stream whose priming fails ends alone with ``error`` set; a failing batch step ends the
streams in that batch with the error, and the worker carries on. Should the worker thread itself die, ``healthy``
is False until the next ``open`` restarts it.

The life of a token, from a request to a MIDI message (one hop a line):

1. A request: ``POST /api/sessions`` (``service.routes.sessions.create_session`` -> ``PortSessions.create``), a
   WebSocket start (``service.routes.websocket.LiveSocket._open``), ``perfrnn play`` (``service.cli.play``), or a
   jam phrase (``service.jam.Jam._listen`` / ``_answer``; ``PhraseEncoder`` turns the player's notes into tokens).
2. ``service.streams.music_spec`` (``tasks.music.generate.stream_spec``): primer, sampling, controls -> ``StreamSpec``.
3. ``Engine.open`` queues the ``Stream``; the worker primes it (``_admit``) and adds it to the batch (``_join``).
4. ``Engine._step``: ``sampling.advance`` runs the model one step for every due stream and samples each next
   token through the head, under the keyboard mask (``performance_rnn.keyboard``).
5. ``Stream.emit`` hands the token to its consumer: ``LivePlayback._on_token`` on this thread (``Stream.attach``),
   or the ``tokens`` queue that ``LiveSocket._write`` drains (an offline render: ``service.render.collect``).
6. ``service.playback.Timeline.feed``: ``codecs.performance.PerformanceDecoder.feed`` turns the token into timed
   note-ons/offs, and ``Timeline.due`` puts each on the wall clock (pauses and the first token's lag included).
7. ``Player.schedule`` queues the ``mido.Message`` (``service.playback.timed_message``); the WebSocket sends a
   ``LiveNote`` instead, which the browser schedules.
8. The ``PlayerHub`` (or the player's own) thread sends it at its due time: ``Player._send`` -> ``OutputPort.send``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from performance_rnn.config import SamplingConfig
from performance_rnn.heads import BatchSampling, Generator, Head
from performance_rnn.model import LSTMState
from performance_rnn.sampling import Frontier, StepModel, TokenMask, advance, generators_from_seeds, prime_last

log = logging.getLogger(__name__)


class EngineBusy(RuntimeError):
    """The engine holds its maximum number of streams: try again later."""


class StreamFailed(RuntimeError):
    """The engine could not generate this stream (its ``error`` says why); other streams are unaffected."""


PRIME_CHUNK = 128  # primer tokens fed per worker iteration, across the streams being primed
BATCH_SLACK_S = 0.1  # a live stream this close to its lookahead steps along with one that reached it


@dataclass
class StreamSpec:
    primer: torch.Tensor  # (T,) tokens, T >= 1
    sampling: SamplingConfig = SamplingConfig()
    seed: int = 0
    controls: torch.Tensor | None = None  # (C,) for a conditioned model
    lookahead_s: float | None = 0.2  # music generated ahead of the wall clock; None = offline, no pacing
    max_seconds: float | None = None  # end the stream after this much music
    max_steps: int | None = None  # or after this many tokens
    paused: bool = False  # join paused: take injected tokens (a phrase as it is played), generate after ``resume``


@dataclass
class _Priming:
    """A joining stream part-way through its primer: ``pos`` tokens fed, the state and output params so far."""

    stream: Stream
    pos: int = 0
    state: LSTMState | None = None
    params: torch.Tensor | None = None  # (1, P) after the last fed token

    @property
    def remaining(self) -> int:
        return int(self.stream.spec.primer.shape[0]) - self.pos


@dataclass
class Stream:
    """A handle to one stream. Thread-safe: change controls or close it from any thread."""

    id: int
    spec: StreamSpec
    tokens: queue.Queue[int | None] = field(default_factory=queue.Queue)
    music_s: float = 0.0  # music time generated so far
    steps: int = 0
    started_at: float = 0.0  # engine clock when the stream's music time 0 is due (0.0: not started yet)
    prerolling: bool = False  # live and generating its first lookahead: its clock starts when that is done
    paused_at: float | None = None
    closed: threading.Event = field(default_factory=threading.Event)
    error: str | None = None  # why the engine ended this stream early (None: it ended normally or still runs)
    _pending: dict[str, object] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sink: Callable[[int | None], None] | None = None
    _emit_lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, sink: Callable[[int | None], None]) -> None:
        """Hand every token from now on (None: the end) to ``sink`` on the engine's thread instead of queueing it
        in ``tokens``: first those already queued, in order. The sink must be quick and never block (live
        playback schedules into a player); an exception in it closes this stream alone. Readers of ``tokens``
        (the WebSocket route, offline renders) need not call this."""
        with self._emit_lock:
            while True:
                try:
                    token = self.tokens.get_nowait()
                except queue.Empty:
                    break
                self._call(sink, token)
            self._sink = sink

    def emit(self, token: int | None) -> None:
        """Deliver a token, or None for the end (the engine calls this)."""
        with self._emit_lock:
            if self._sink is None:
                self.tokens.put(token)
            else:
                self._call(self._sink, token)
                if token is None:
                    self._sink = None  # the consumer holds this stream: end the cycle, refcounting frees both

    def _call(self, sink: Callable[[int | None], None], token: int | None) -> None:
        try:
            sink(token)
        except Exception:  # the consumer's failure ends its stream, not the engine's batch
            log.exception("the consumer of stream %d failed: closing it", self.id)
            self.closed.set()

    def set_sampling(self, sampling: SamplingConfig) -> None:
        with self._lock:
            self._pending["sampling"] = sampling

    def set_controls(self, controls: torch.Tensor | None) -> None:
        with self._lock:
            self._pending["controls"] = controls

    def inject(self, tokens: Sequence[int]) -> None:
        """Feed tokens (e.g. a player's notes) into this stream's state before its next sampled token, as
        if the model had generated them; they are not echoed to ``tokens``."""
        with self._lock:
            self._pending.setdefault("inject", [])
            self._pending["inject"].extend(int(t) for t in tokens)  # type: ignore[attr-defined]

    def pause(self) -> None:
        with self._lock:
            self._pending["pause"] = True

    def resume(self, max_seconds: float | None = None) -> None:
        """Generate again; ``max_seconds`` (if given) ends the stream after that much music from now on."""
        with self._lock:
            self._pending["pause"] = False
            if max_seconds is not None:
                self._pending["max_seconds"] = float(max_seconds)

    def close(self) -> None:
        self.closed.set()

    def fail(self, error: str) -> None:
        """End the stream with ``error`` (called by the engine)."""
        if self.error is None:
            self.error = error
        self.closed.set()
        self.emit(None)

    def take_pending(self) -> dict[str, object]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending


class Engine:
    """Continuous batching over one step model and head. ``seconds_of`` maps a batch of tokens to the music
    seconds each advances (music: TIME_SHIFT lengths), which paces live streams."""

    def __init__(self, model: StepModel, head: Head, *, seconds_of: Callable[[torch.Tensor], torch.Tensor],
                 default_controls: torch.Tensor | None = None, max_streams: int = 64,
                 clock: Callable[[], float] = time.monotonic, device: torch.device | str = "cpu",
                 masks: Callable[[list[list[int]]], TokenMask] | None = None,
                 prime_chunk: int = PRIME_CHUNK, batch_slack_s: float = BATCH_SLACK_S,
                 prime_window: int | None = None) -> None:
        self.model, self.head, self.seconds_of = model, head, seconds_of
        self.default_controls = default_controls
        self.masks = masks  # primers -> their streams' token masks (music: the keyboard mask); None = no mask
        self._mask: TokenMask | None = None
        self.max_streams = max_streams
        self.prime_chunk = max(1, prime_chunk)
        self.batch_slack_s = batch_slack_s
        self.prime_window = prime_window  # prime with at most this many of a primer's last tokens (None: all)
        self.clock = clock
        self.device = torch.device(device)
        self._joining: list[Stream] = []  # opened, not yet in the batch (counted in ``active``)
        self._priming: dict[int, _Priming] = {}  # worker only: progress of the joining streams' primers
        self._streams: list[Stream] = []  # row i of the batch tensors is _streams[i]
        self._frontier: Frontier | None = None
        self._settings: BatchSampling | None = None
        self._controls: torch.Tensor | None = None
        self._generators: list[Generator] = []
        self._next_id = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps = 0  # batched steps taken (stats)
        self.stepped_rows = 0
        self.failures = 0  # batch steps or workers that failed (each ended the streams it held)
        self.last_error: str | None = None

    # ---- public API (any thread) ----
    def start(self) -> Engine:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if not alive and not self._stop.is_set():
                if self._thread is not None:
                    log.warning("restarting the engine worker (it died: %s)", self.last_error)
                self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
                self._thread.start()
        return self

    @property
    def healthy(self) -> bool:
        """The worker runs (False before ``start``, after ``stop``, or while a dead worker awaits its restart)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._streams) + len(self._joining)

    def open(self, spec: StreamSpec) -> Stream:
        """Add a stream; it is primed and joins the batch at the next step. Raises EngineBusy when full."""
        if spec.primer.ndim < 1 or spec.primer.shape[0] < 1:
            raise ValueError("a stream needs a primer of at least one token")
        with self._lock:
            if len(self._streams) + len(self._joining) >= self.max_streams:
                raise EngineBusy(f"the engine already runs {self.max_streams} streams")
            stream = Stream(self._next_id, spec)
            self._next_id += 1
            self._joining.append(stream)
        if self._thread is not None and not self.healthy:
            self.start()  # the worker died: bring it back for this stream
        self._wake.set()
        return stream

    # ---- worker ----
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._iterate()
                except Exception as exc:  # noqa: BLE001 - a failing step ends the streams it held; the worker goes on
                    self._fail_batch(exc)
        except BaseException as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            log.exception("engine worker died")  # the thread ends here; ``healthy`` is False until ``start``
        finally:  # no consumer is left waiting: a stop ends the streams, a crash fails them
            for s in self._streams + self._joining:
                if self._stop.is_set():
                    s.emit(None)
                else:
                    s.fail(f"the engine worker died ({self.last_error})")
            with self._lock:
                self._streams, self._joining, self._generators = [], [], []
                self._priming.clear()
                self._frontier = self._settings = self._controls = self._mask = None

    def _iterate(self) -> None:
        self._admit()
        self._apply_pending()
        rows = self._due_rows()
        if rows is None:
            if not self._priming:
                self._wake.wait(timeout=0.002)
                self._wake.clear()
            return
        self._step(rows)

    def _fail_batch(self, exc: Exception) -> None:
        """End every stream in the batch with ``exc`` and start from an empty batch; joining streams stay."""
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("engine step failed: ending the %d streams in the batch", len(self._streams), exc_info=exc)
        for s in self._streams:
            s.fail(f"the engine failed while generating this stream ({self.last_error})")
        with self._lock:
            self._streams, self._generators = [], []
            self._frontier = self._settings = self._controls = self._mask = None

    def _admit(self) -> None:
        """Feed primers in bounded chunks (shortest first); streams whose primer is done join the batch."""
        with self._lock:
            joining = list(self._joining)  # they stay counted in ``active`` until they are in the batch
        if not joining:
            return
        for s in joining:
            if s.id not in self._priming:  # only the primer's last ``prime_window`` tokens are fed
                skip = 0 if self.prime_window is None else max(0, int(s.spec.primer.shape[0]) - self.prime_window)
                self._priming[s.id] = _Priming(s, pos=skip)
        done: list[_Priming] = []
        gone: list[Stream] = []
        # chunks only where there is someone to keep waiting: with no stream playing, a primer goes in whole
        budget = self.prime_chunk if any(s.paused_at is None for s in self._streams) else 1 << 62
        for p in sorted((self._priming[s.id] for s in joining), key=lambda p: p.remaining):
            if p.stream.closed.is_set():
                gone.append(p.stream)
                continue
            if budget <= 0:
                continue
            n = min(p.remaining, budget)
            try:
                self._feed(p, n)
            except Exception as exc:  # noqa: BLE001 - this stream alone fails (e.g. out of memory for its primer)
                log.warning("stream %d failed while priming: %s", p.stream.id, exc)
                p.stream.fail(f"priming failed: {type(exc).__name__}: {exc}")
                gone.append(p.stream)
                continue
            budget -= n
            if p.remaining == 0:
                done.append(p)
        for s in gone:
            self._priming.pop(s.id, None)
        if gone:
            with self._lock:
                self._joining = [s for s in self._joining if s not in gone]
        if done:
            try:
                self._join(done)
            except Exception as exc:  # noqa: BLE001 - the joining streams alone fail, the batch plays on
                log.warning("streams %s failed while joining: %s", [p.stream.id for p in done], exc)
                for p in done:
                    p.stream.fail(f"joining failed: {type(exc).__name__}: {exc}")
                with self._lock:
                    self._joining = [s for s in self._joining if not s.closed.is_set()]

    def _feed(self, p: _Priming, n: int) -> None:
        sp = p.stream.spec
        chunk = sp.primer[p.pos : p.pos + n].to(self.device).unsqueeze(0)  # (1, n)
        ctrl = self._ctrl(sp)
        ctrl_seq = None if ctrl is None else ctrl.expand(1, n, -1)
        with torch.no_grad():
            p.params, p.state = prime_last(self.model, chunk, p.state, ctrl_seq)
        p.pos += n

    def _join(self, done: list[_Priming]) -> None:
        joining = [p.stream for p in done]
        for s in joining:
            del self._priming[s.id]
        specs = [s.spec for s in joining]
        assert all(p.params is not None and p.state is not None for p in done)
        frontier = Frontier(torch.cat([p.params for p in done]),  # type: ignore[misc]
                            LSTMState.cat([p.state for p in done]))  # type: ignore[misc]
        now = self.clock()
        gens = generators_from_seeds([s.spec.seed for s in joining])  # as ``generate`` seeds a stream
        for s in joining:
            s.paused_at = now if s.spec.paused else None
            s.prerolling = s.spec.lookahead_s is not None and not s.spec.paused
            s.started_at = 0.0 if s.prerolling else now
        settings = BatchSampling.of([sp.sampling for sp in specs], self.device)
        per_stream = [self._ctrl(sp) for sp in specs]
        ctrls = None if self.default_controls is None else torch.stack([c for c in per_stream if c is not None])
        mask = None if self.masks is None else self.masks([sp.primer.tolist() for sp in specs])
        with self._lock:
            if self._frontier is None:
                self._frontier, self._settings, self._controls = frontier, settings, ctrls
                self._mask = mask
            else:
                f = self._frontier
                self._frontier = Frontier(torch.cat([f.params, frontier.params]),
                                          LSTMState.cat([f.state, frontier.state]))
                assert self._settings is not None
                self._settings = BatchSampling(*(torch.cat([a, b]) for a, b in
                                                 zip(_fields(self._settings), _fields(settings), strict=True)))
                if self._controls is not None and ctrls is not None:
                    self._controls = torch.cat([self._controls, ctrls])
                if self._mask is not None and mask is not None:
                    self._mask = type(self._mask).cat([self._mask, mask])  # type: ignore[attr-defined]
            self._streams.extend(joining)
            self._generators.extend(gens)
            self._joining = [s for s in self._joining if s not in joining]

    def _ctrl(self, spec: StreamSpec) -> torch.Tensor | None:
        if self.default_controls is None:
            return None
        c = spec.controls if spec.controls is not None else self.default_controls
        return c.to(self.device).float()

    def _apply_pending(self) -> None:
        """Apply control changes, pauses and closes between steps (so they reach the next token)."""
        drop = []
        now = self.clock()
        for i, s in enumerate(self._streams):
            if s.closed.is_set():
                drop.append(i)
                continue
            pending = s.take_pending()
            if "sampling" in pending:
                sp = BatchSampling.of([pending["sampling"]], self.device)  # type: ignore[list-item]
                assert self._settings is not None
                self._settings.temperature[i], self._settings.top_k[i], self._settings.top_p[i] = (
                    sp.temperature[0], sp.top_k[0], sp.top_p[0])
                self._settings = BatchSampling(*_fields(self._settings))  # re-derives ``plain``
            if "controls" in pending and self._controls is not None:
                c = pending["controls"]
                self._controls[i] = (self.default_controls if c is None else c).to(self.device)  # type: ignore[attr-defined]
            if pending.get("inject"):
                self._inject(i, pending["inject"])  # type: ignore[arg-type]
            if "max_seconds" in pending:
                s.spec.max_seconds = s.music_s + float(pending["max_seconds"])  # type: ignore[arg-type]
            if pending.get("pause") is True and s.paused_at is None:
                s.paused_at = now
            elif pending.get("pause") is False and s.paused_at is not None:
                if not s.prerolling:
                    s.started_at += now - s.paused_at  # the music clock did not run while paused
                s.paused_at = None
        if drop:
            self._remove(drop)

    def _inject(self, row: int, tokens: list[int]) -> None:
        assert self._frontier is not None
        idx = torch.tensor([row], device=self.device)
        inputs = torch.tensor([tokens], dtype=torch.long, device=self.device)  # (1, T)
        ctrl = None if self._controls is None else self._controls[row].expand(1, len(tokens), -1)
        state = self._frontier.state.select(idx)
        with torch.no_grad():
            params, state = self.model.forward(inputs, state, ctrl)
        self._frontier.params[row] = params[0, -1]
        if self._mask is not None:
            for t in tokens:
                col = torch.full((len(self._streams),), -1, dtype=torch.long, device=self.device)
                col[row] = t
                self._mask.update(col)
        self._frontier.state.h[:, row] = state.h[:, 0]
        self._frontier.state.c[:, row] = state.c[:, 0]

    def _due_rows(self) -> list[int] | None:
        """Rows that need a token now: offline streams always, live ones while within their lookahead; and when
        any row steps, every live row within ``batch_slack_s`` of needing one steps with it, so that many streams
        share few large steps rather than many small ones (a stream is then up to lookahead + slack ahead)."""
        now = self.clock()
        rows, soon, urgent = [], [], False
        for i, s in enumerate(self._streams):
            la = s.spec.lookahead_s
            if s.paused_at is not None:
                continue
            if la is None:
                rows.append(i)
                continue
            ahead = -1.0 if s.prerolling else s.music_s - (now - s.started_at)
            if ahead < la:
                rows.append(i)
                urgent = True
            elif ahead < la + self.batch_slack_s:
                soon.append(i)
        if urgent and soon:
            rows = sorted(rows + soon)
        return rows or None

    def _step(self, rows: list[int]) -> None:
        assert self._frontier is not None and self._settings is not None
        idx = torch.tensor(rows, device=self.device)
        full = len(rows) == len(self._streams)
        f = self._frontier if full else Frontier(self._frontier.params.index_select(0, idx),
                                                 self._frontier.state.select(idx))
        settings = self._settings if full else self._settings.select(idx)
        ctrl = None if self._controls is None else (self._controls if full else self._controls.index_select(0, idx))
        gens = [self._generators[i] for i in rows]
        mask = None if self._mask is None else (self._mask if full else self._mask.select(idx))
        outputs, new = advance(self.model, self.head, f, settings, gens, ctrl, mask)
        if mask is not None and not full:
            assert self._mask is not None
            self._mask.put(idx, mask)
        if full:
            self._frontier = new
        else:
            self._frontier.params.index_copy_(0, idx, new.params)
            self._frontier.state.h.index_copy_(1, idx, new.state.h)
            self._frontier.state.c.index_copy_(1, idx, new.state.c)
        secs = self.seconds_of(outputs.cpu()).tolist()
        toks = outputs.cpu().tolist()
        self.steps += 1
        self.stepped_rows += len(rows)
        finished = []
        now = self.clock()
        for j, i in enumerate(rows):
            s = self._streams[i]
            s.steps += 1
            s.music_s += secs[j]
            if s.prerolling and s.music_s >= (s.spec.lookahead_s or 0.0):
                s.prerolling, s.started_at = False, now  # its first lookahead exists: its music may start
            s.emit(toks[j])
            sp = s.spec
            if (sp.max_seconds is not None and s.music_s >= sp.max_seconds) or (
                    sp.max_steps is not None and s.steps >= sp.max_steps):
                finished.append(i)
        if finished:
            self._remove(finished)

    def _remove(self, rows: Sequence[int]) -> None:
        gone = set(rows)
        keep = [i for i in range(len(self._streams)) if i not in gone]
        for i in sorted(gone):
            self._streams[i].emit(None)
            self._streams[i].closed.set()
        with self._lock:
            if not keep:
                self._frontier = self._settings = self._controls = None
                self._mask = None
            else:
                idx = torch.tensor(keep, device=self.device)
                assert self._frontier is not None and self._settings is not None
                self._frontier = Frontier(self._frontier.params.index_select(0, idx),
                                          self._frontier.state.select(idx))
                self._settings = self._settings.select(idx)
                if self._controls is not None:
                    self._controls = self._controls.index_select(0, idx)
                if self._mask is not None:
                    self._mask = self._mask.select(idx)
            self._streams = [self._streams[i] for i in keep]
            self._generators = [self._generators[i] for i in keep]


def _fields(s: BatchSampling) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return s.temperature, s.top_k, s.top_p
