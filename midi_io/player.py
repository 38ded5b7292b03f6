"""Send timestamped MIDI messages at their due time on a monotonic clock, and never leave a note sounding.

Times given to ``Player.schedule`` are seconds from the player's origin (set by ``start``); the player's
thread sleeps until ``spin_s`` before each due time, then spins. ``stop``, ``cancel``, ``panic``, leaving a
``with`` block and a failing port all send a note-off for every note the player left sounding.

A timed port (``TimedOutputPort``: frame-accurate JACK, ``midi_io.jack_timed``) is handed each message
``port.lead_s`` before its due time with the due time attached (``send_at``), and places it itself; ``stop``,
``cancel`` and ``panic`` then also make it drop what it holds and release what it left sounding.

Many players can share one emitting thread instead: ``Player(port, config, hub=hub)`` on a running
``PlayerHub``. The hub waits on a condition variable until the earliest due time across its players (an
earlier message scheduled meanwhile wakes it), spins the last ``spin_s``, then emits every player's due
messages; each player keeps its own lock, late policy, duration guard, stats and note-off bookkeeping.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

import mido

from midi_io.errors import PortUnavailableError
from midi_io.notes import Note
from midi_io.ports import OutputPort, TimedOutputPort

logger = logging.getLogger(__name__)

TimedMessage = tuple[float, mido.Message]  # (time_s from the origin, message)
NoteKey = tuple[int, int]  # (channel, pitch)
ALL_NOTES_OFF_CC = 123
_LOG_EVERY_S = 1.0  # late events are logged at most once a second


class LatePolicy(StrEnum):
    """What to do with an event due more than ``late_threshold_s`` ago."""

    DROP = "drop"  # drop a late note-on and its note-off; everything else is still sent
    RESYNC = "resync"  # send it now and move the origin forward by its lateness, so later events shift too


@dataclass(frozen=True)
class PlayerConfig:
    channel: int | None = None  # 0..15: channel messages are re-channelled to it; None keeps their channel
    late_threshold_s: float = 0.1  # lateness beyond which the late policy applies
    late_policy: LatePolicy = LatePolicy.DROP
    max_note_s: float = 5.0  # the player releases a note sounding longer than this
    max_pending: int = 8192  # bound on scheduled, unsent messages
    # these two apply to a player's own thread; a PlayerHub has its own spin_s and is woken by earlier events
    spin_s: float = 0.001  # sleep until this long before a due time, then spin
    max_sleep_s: float = 0.01  # longest single sleep, so an earlier event scheduled meanwhile is not missed
    max_timing_errors: int = 100_000  # most recent timing errors kept in the stats

    def __post_init__(self) -> None:
        if self.channel is not None and not 0 <= self.channel <= 15:
            raise ValueError(f"channel must be in range 0..15 or None, got {self.channel}")
        for name in ("late_threshold_s", "max_note_s", "spin_s", "max_sleep_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_pending < 1 or self.max_timing_errors < 0:
            raise ValueError("max_pending must be >= 1 and max_timing_errors >= 0")


@dataclass(frozen=True)
class PlayerStats:
    sent: int  # messages sent to the port
    late: int  # events later than the threshold (dropped or resynced)
    dropped: int  # late note-ons dropped (their note-offs are not sent either)
    resyncs: int  # origin moves under LatePolicy.RESYNC
    forced_offs: int  # notes released by the max-duration guard
    # send time - due time, seconds, oldest first; for a timed port the hand-over time (negative: ahead)
    timing_errors_s: tuple[float, ...]


def note_events_to_messages(events: Iterable[tuple[float, str, int, int]], channel: int = 0) -> list[TimedMessage]:
    """(time_s, "on" | "off", pitch, velocity) events -> time-sorted messages on ``channel`` (0..15).
    At equal times note-offs come first, so a re-struck key is released before it sounds again."""
    out: list[tuple[float, int, mido.Message]] = []
    for time_s, kind, pitch, velocity in events:
        if kind not in ("on", "off"):
            raise ValueError(f"event kind must be 'on' or 'off', got {kind!r}")
        msg_type = "note_on" if kind == "on" and velocity > 0 else "note_off"
        vel = velocity if kind == "on" else 0
        out.append(
            (time_s, int(msg_type == "note_on"), mido.Message(msg_type, channel=channel, note=pitch, velocity=vel))
        )
    out.sort(key=lambda e: (e[0], e[1]))
    return [(t, m) for t, _, m in out]


def notes_to_messages(notes: Sequence[Note], channel: int = 0) -> list[TimedMessage]:
    """Notes -> time-sorted note-on/note-off messages on ``channel``; times in seconds."""
    events = [(n.start_s, "on", n.pitch, n.velocity) for n in notes] + [(n.end_s, "off", n.pitch, 0) for n in notes]
    return note_events_to_messages(events, channel)


class Player:
    """Emits scheduled messages on its own thread, or on ``hub``'s thread when given one (the player then uses
    the hub's clock). ``with Player(port) as p:`` starts it and always stops it."""

    def __init__(
        self,
        port: OutputPort,
        config: PlayerConfig | None = None,
        *,
        now: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        hub: PlayerHub | None = None,
    ) -> None:
        if hub is not None and (now is not None or sleep is not None):
            raise ValueError("a player on a hub uses the hub's clock: give now/sleep to the hub")
        self.port = port
        self.config = config or PlayerConfig()
        self._timed: TimedOutputPort | None = port if isinstance(port, TimedOutputPort) else None
        self._lead_s = self._timed.lead_s if self._timed is not None else 0.0  # hand-over ahead of the due time
        self.hub = hub
        self.error: Exception | None = None  # what stopped the thread, if anything did
        self._now = hub.now if hub is not None else now or time.monotonic
        self._sleep = sleep or time.sleep
        self._started = False
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, mido.Message]] = []
        self._seq = itertools.count()
        self._origin: float | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sounding: dict[NoteKey, float] = {}  # key -> clock time its note-on was sent
        self._swallow: Counter[NoteKey] = Counter()  # note-offs owed to dropped or force-released notes
        self._counts: Counter[str] = Counter()
        self._errors_s: deque[float] = deque(maxlen=self.config.max_timing_errors)
        self._last_log = -math.inf

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """Stop; a port failure is raised here unless another exception is already on its way."""
        self.stop()
        if exc_type is None:
            self._raise_if_failed()

    def start(self, origin_s: float | None = None) -> Player:
        """Start the thread (or join the hub); time 0 of the schedule is ``origin_s`` on the clock (default: now).

        Raises:
            RuntimeError: already started, or the hub is closed.
        """
        with self._cond:
            if self._started:
                raise RuntimeError("player already started")
            self._origin = self._now() if origin_s is None else origin_s
            self._started = True
            if self.hub is None:
                self._thread = threading.Thread(target=self._run, name="midi-player", daemon=True)
                self._thread.start()
        if self.hub is not None:
            try:
                self.hub._attach(self)
            except RuntimeError:
                with self._cond:
                    self._stopping = True
                raise
        return self

    def piece_time(self) -> float:
        """Seconds since the origin on the player's clock (0.0 before ``start``), after any resync."""
        with self._cond:
            return 0.0 if self._origin is None else self._now() - self._origin

    @property
    def sounding(self) -> frozenset[NoteKey]:
        with self._cond:
            return frozenset(self._sounding)

    def schedule(self, time_s: float, msg: mido.Message, *, timeout_s: float | None = None) -> None:
        """Queue ``msg`` for ``time_s`` seconds after the origin. Waits up to ``timeout_s`` (None: forever)
        while ``max_pending`` messages are queued.

        Raises:
            queue.Full: still full after ``timeout_s``.  PortUnavailableError: the player's port failed.
            RuntimeError: the player was stopped.
        """
        if not math.isfinite(time_s):
            raise ValueError(f"time_s must be finite, got {time_s}")
        if self.config.channel is not None and hasattr(msg, "channel"):
            msg = msg.copy(channel=self.config.channel)
        with self._cond:
            self._raise_if_failed(stopped=True)

            def has_room() -> bool:
                return len(self._heap) < self.config.max_pending or self._stopping or self.error is not None

            if not has_room() and (not self._started or not self._cond.wait_for(has_room, timeout_s)):
                raise queue.Full(f"{len(self._heap)} messages pending (max_pending={self.config.max_pending})")
            self._raise_if_failed(stopped=True)
            seq = next(self._seq)
            heapq.heappush(self._heap, (time_s, seq, msg))
            self._cond.notify_all()
            if self.hub is not None and self._started and self._heap[0][1] == seq:  # a new earliest message
                assert self._origin is not None
                self.hub._wake_for(self, self._origin + time_s - self._lead_s)

    def schedule_many(self, messages: Iterable[TimedMessage], *, timeout_s: float | None = None) -> None:
        for time_s, msg in messages:
            self.schedule(time_s, msg, timeout_s=timeout_s)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block (real time) until every scheduled message is sent; False on timeout.

        Raises:
            PortUnavailableError: the player's port failed.
        """
        with self._cond:
            done = self._cond.wait_for(lambda: not self._heap or self.error is not None, timeout_s)
            self._raise_if_failed()
            return done

    def cancel(self) -> None:
        """Forget every pending message and release every sounding note; the player keeps running."""
        with self._cond:
            self._heap.clear()
            self._swallow.clear()
            self._release_all_locked()
            self._cond.notify_all()

    def panic(self) -> None:
        """``cancel``, then all-notes-off (CC 123) on all 16 channels."""
        with self._cond:
            self.cancel()
            for ch in range(16):
                self._send_quietly(mido.Message("control_change", channel=ch, control=ALL_NOTES_OFF_CC, value=0))

    def stop(self) -> None:
        """Stop the thread (or leave the hub), drop pending messages and release every sounding note. Idempotent;
        nothing is sent from this player once it returns."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.hub is not None:
            self.hub._detach(self)
        with self._cond:
            self._heap.clear()
            self._release_all_locked()

    def stats(self) -> PlayerStats:
        with self._cond:
            c = self._counts
            return PlayerStats(
                c["sent"], c["late"], c["dropped"], c["resyncs"], c["forced_offs"], tuple(self._errors_s)
            )

    def _run(self) -> None:
        cfg = self.config
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                    wake = self._next_wake_locked()
                    if wake is None:
                        self._cond.wait()
                        continue
                delay = wake - self._now()
                if delay > cfg.spin_s:
                    self._sleep(min(delay - cfg.spin_s, cfg.max_sleep_s))
                    continue
                while self._now() < wake:
                    self._sleep(0)  # spin, yielding the GIL
                with self._cond:
                    if not self._stopping:
                        self._emit_due_locked()
        except Exception as exc:  # any failure must still release the notes
            logger.exception("MIDI player stopped by an error")
            with self._cond:
                self.error = exc
        finally:
            with self._cond:
                self._release_all_locked()
                self._cond.notify_all()

    # ---- called by the hub's thread, which holds no lock of its own meanwhile ----
    def _hub_next_wake(self) -> float | None:
        with self._cond:
            if self._stopping or self.error is not None:
                return None
            return self._next_wake_locked()

    def _hub_emit(self) -> float | None:
        """Send what is due; returns the next wake, None when there is none or this player has failed (its
        notes are then released)."""
        try:
            with self._cond:
                if self._stopping or self.error is not None:
                    return None
                self._emit_due_locked()
                return self._next_wake_locked()
        except Exception as exc:  # noqa: BLE001 - this player's port failed: release its notes, not the others'
            self._fail(exc)
            return None

    def _fail(self, exc: Exception) -> None:
        logger.error("MIDI player stopped by an error", exc_info=exc)
        with self._cond:
            self.error = exc
            self._release_all_locked()
            self._cond.notify_all()

    def _next_wake_locked(self) -> float | None:
        assert self._origin is not None
        times = [on + self.config.max_note_s for on in self._sounding.values()]
        if self._heap:
            times.append(self._origin + self._heap[0][0] - self._lead_s)
        return min(times, default=None)

    def _emit_due_locked(self) -> None:
        cfg = self.config
        assert self._origin is not None
        for key, on_at in list(self._sounding.items()):
            if self._now() - on_at >= cfg.max_note_s:
                self._send(mido.Message("note_off", channel=key[0], note=key[1]), None)
                self._swallow[key] += 1
                self._counts["forced_offs"] += 1
                logger.warning("released channel %d pitch %d after %.1f s (max_note_s)", *key, cfg.max_note_s)
        while self._heap and self._origin + self._heap[0][0] - self._lead_s <= self._now():
            time_s, _, msg = heapq.heappop(self._heap)
            due = self._origin + time_s
            late_s = self._now() - due
            if late_s > cfg.late_threshold_s:
                self._counts["late"] += 1
                if cfg.late_policy is LatePolicy.RESYNC:
                    self._origin += late_s
                    self._counts["resyncs"] += 1
                    self._log_late("clock resynced", late_s)
                elif _is_note_on(msg):
                    self._swallow[(msg.channel, msg.note)] += 1
                    self._counts["dropped"] += 1
                    self._log_late("note-on dropped", late_s)
                    continue
            self._deliver(msg, due)
        self._cond.notify_all()

    def _deliver(self, msg: mido.Message, due: float) -> None:
        """Send a scheduled message, unless it is a note-off owed to a dropped or force-released note."""
        if _is_note_off(msg):
            key = (msg.channel, msg.note)
            if self._swallow[key] > 0:
                self._swallow[key] -= 1
                if not self._swallow[key]:
                    del self._swallow[key]
                return
        self._send(msg, due)

    def _send(self, msg: mido.Message, due: float | None) -> None:
        """Send now (a timed port: hand over for ``due``), keeping the sounding set and the stats in step.
        Caller holds the lock."""
        if self._timed is not None and due is not None:
            self._timed.send_at(msg, due)
        else:
            self.port.send(msg)
        sent_at = self._now()
        if _is_note_on(msg):
            self._sounding[(msg.channel, msg.note)] = sent_at
        elif _is_note_off(msg):
            self._sounding.pop((msg.channel, msg.note), None)
        self._counts["sent"] += 1
        if due is not None:
            self._errors_s.append(sent_at - due)

    def _release_all_locked(self) -> None:
        if self._timed is not None:  # what it holds must not sound after the releases; it releases its own too
            try:
                self._timed.drop_pending()
            except Exception as exc:  # noqa: BLE001 - releasing notes on a broken port is best effort
                logger.warning("could not make the port drop its pending messages: %s", exc)
        for channel, pitch in list(self._sounding):
            self._send_quietly(mido.Message("note_off", channel=channel, note=pitch))
        self._sounding.clear()

    def _send_quietly(self, msg: mido.Message) -> None:
        try:
            self.port.send(msg)
            self._counts["sent"] += 1
        except Exception as exc:  # noqa: BLE001 - releasing notes on a broken port is best effort
            logger.warning("could not send %s while releasing notes: %s", msg, exc)

    def _log_late(self, what: str, late_s: float) -> None:
        if self._now() - self._last_log >= _LOG_EVERY_S:
            self._last_log = self._now()
            c = self._counts
            logger.warning(
                "event %.1f ms late: %s (%d late, %d dropped so far)", late_s * 1e3, what, c["late"], c["dropped"]
            )

    def _raise_if_failed(self, *, stopped: bool = False) -> None:
        if self.error is not None:
            raise PortUnavailableError(f"MIDI player stopped: {self.error}") from self.error
        if stopped and self._stopping:
            raise RuntimeError("the player is stopped")


class PlayerHub:
    """One thread that emits the scheduled messages of many players (``Player(port, config, hub=hub)``), so N
    players cost one thread competing for the GIL, not N. ``with PlayerHub() as hub:`` starts it and closes it.

    The thread keeps a heap of (wake time, player) entries: a player adds one when it schedules a new earliest
    message, the thread one after serving it; an entry may be stale (the player was cancelled or resynced) and is
    then checked against the player and dropped or moved. The thread waits on a condition variable until
    ``spin_s`` before the earliest entry (an earlier one added meanwhile wakes it), spins (yielding the GIL) to
    the due time, and emits that player's due messages under the player's lock, with its own late policy,
    duration guard and stats. One player's port failing stops that player only. ``spin_s`` is 0 by default: with
    a hundred streams a spin before each message costs most of a core and, once the engine wants the GIL too,
    made messages later, not earlier (bench/realtime.py: 96 streams held with no message later than 10 ms
    without spinning, not with 0.3 ms).

    ``now``/``sleep`` are for tests: with ``sleep`` given, the thread waits by calling ``sleep`` (a fake clock
    advances) rather than on the condition variable in real time.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        spin_s: float = 0.0,
        name: str = "midi-hub",
    ) -> None:
        if not spin_s >= 0:
            raise ValueError(f"spin_s must be >= 0, got {spin_s}")
        self.now = now
        self.spin_s = spin_s
        self._sleep = sleep
        self._name = name
        self._cond = threading.Condition()
        self._players: list[Player] = []
        self._wakes: list[tuple[float, int, Player]] = []  # (clock time, tie-break, player): a heap
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def players(self) -> int:
        with self._cond:
            return len(self._players)

    def start(self) -> PlayerHub:
        with self._cond:
            if self._thread is not None or self._closed:
                raise RuntimeError("the hub is closed" if self._closed else "hub already started")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, then stop every attached player (each releases its sounding notes). Idempotent."""
        with self._cond:
            self._closed = True
            players = list(self._players)
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for player in players:
            player.stop()

    def _attach(self, player: Player) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the hub is closed")
            self._players.append(player)
        wake = player._hub_next_wake()  # what it was given before it started
        if wake is not None:
            self._wake_for(player, wake)

    def _detach(self, player: Player) -> None:
        with self._cond:
            if player in self._players:
                self._players.remove(player)

    def _wake_for(self, player: Player, at: float) -> None:
        """``player`` has something due at clock time ``at``. Called under the player's lock: the lock order is
        player, then hub; the thread never holds both."""
        with self._cond:
            entry = (at, next(self._seq), player)
            heapq.heappush(self._wakes, entry)
            if self._wakes[0] is entry:
                self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._closed:
                        return
                    if not self._wakes:
                        self._cond.wait()
                        continue
                    delay = self._wakes[0][0] - self.spin_s - self.now()
                    if delay > 0 and self._sleep is None:
                        self._cond.wait(delay)  # woken early by an earlier entry, or by close
                        continue
                    due = heapq.heappop(self._wakes)[2] if delay <= 0 else None
                if due is not None:
                    self._serve(due)
                elif self._sleep is not None:
                    self._sleep(delay)  # a test's clock
        except Exception as exc:  # a bug here must not leave notes sounding or callers waiting forever
            logger.exception("MIDI player hub stopped by an error")
            with self._cond:
                self._closed = True
                players = list(self._players)
            for player in players:
                player._fail(exc)

    def _serve(self, player: Player) -> None:
        """One of ``player``'s entries is (about) due: check it against the player, spin, emit, add its next."""
        wake = player._hub_next_wake()
        if wake is None:  # idle, stopped or failed: a new earliest message adds a new entry
            return
        if wake - self.now() > self.spin_s:  # a stale entry: cancelled, resynced or already served
            self._wake_for(player, wake)
            return
        spin = self._sleep or time.sleep
        while self.now() < wake:
            spin(0)  # yields the GIL
        wake = player._hub_emit()
        if player.error is not None:
            self._detach(player)
        elif wake is not None:
            self._wake_for(player, wake)


def run_until_signal(
    stop: Callable[[], None],
    *,
    done: threading.Event | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    poll_s: float = 0.1,
) -> int | None:
    """Block until one of ``signals`` arrives or ``done`` is set, call ``stop()``, then restore the previous
    handlers. Returns the signal number, or None when ``done`` was set. Call it from the main thread."""
    got: list[int] = []
    woken = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        got.append(signum)
        woken.set()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        while not woken.is_set() and not (done is not None and done.is_set()):
            woken.wait(poll_s)
    finally:
        try:
            stop()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    return got[0] if got else None


def _is_note_on(msg: mido.Message) -> bool:
    return bool(msg.type == "note_on" and msg.velocity > 0)


def _is_note_off(msg: mido.Message) -> bool:
    return bool(msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0))
