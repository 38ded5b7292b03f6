"""Live playback: an engine stream's tokens -> timed notes -> due times -> MIDI messages on a ``Player``.

``Timeline`` is the one path from a token to the wall clock, shared by the port playback (``LivePlayback``) and
the WebSocket route (service/routes/websocket.py): token -> ``PerformanceDecoder`` -> music time -> due time,
in seconds after the stream's start on the engine clock (``origin``). The music clock stops while the stream is
paused (the engine moves ``Stream.started_at`` on by the pause), so every due time after a pause moves with it.
The first token arrives after the start (a step later, more with many streams admitted at once, or a busy event
loop), so the whole stream is due that much (plus ``START_MARGIN_S``) later: its opening notes go out as soon as
they exist, in rhythm, rather than late or dropped.

``LivePlayback`` decodes and schedules on the engine's thread as tokens are made (``Stream.attach``), each event
``lookahead`` ahead of its due time. Stopping closes the stream, then stops the player, which releases every
sounding note; pausing silences the sounding notes and the music clock waits. Many playbacks can share one
emitting thread: give each a ``Player(port, config, hub=hub)`` on one ``midi_io.player.PlayerHub``.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable

import mido

from midi_io.player import Player
from performance_rnn.codecs.performance import PerformanceCodecConfig, PerformanceDecoder, TimedNote, final_velocity
from performance_rnn.engine import Stream

log = logging.getLogger(__name__)
START_MARGIN_S = 0.003  # the first token's notes are due this long after it arrives, so they can be sent on time
SWITCH_INTERVAL_S = 0.0005  # longest a thread holds the GIL while another (the player) waits for it
FULL_GC_THRESHOLD = 1000  # middle-generation collections between full ones (Python's default: 10)


def settle_for_realtime() -> None:
    """Ready a live process once it has loaded its models: move what is loaded out of the garbage collector's
    sight (with torch loaded a full collection holds the GIL for ~100 ms); let a thread that waits for the GIL
    (the player sending a due note) have it within ``SWITCH_INTERVAL_S`` rather than Python's default 5 ms; and
    make full collections 100 times rarer (``FULL_GC_THRESHOLD``): with a hundred live streams each one still
    stalled every thread for 20-50 ms, several times a minute. Young garbage is collected as before; what reaches
    the oldest generation and is cyclic waits longer to be freed. bench/realtime.py measures the effects."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_THRESHOLD)


def timed_message(ev: TimedNote, channel: int = 0) -> mido.Message:
    if ev.on:
        return mido.Message("note_on", channel=channel, note=ev.pitch, velocity=ev.velocity)
    return mido.Message("note_off", channel=channel, note=ev.pitch, velocity=0)


class Timeline:
    """One stream's music on the wall clock. Built once the stream has started (``Stream.started_at`` set);
    ``feed`` each token in order; an event is due ``due(ev)`` seconds after ``origin`` (the stream's start on
    ``clock``, the engine's clock). Feeding happens on one thread (the engine's, or the event loop's)."""

    def __init__(self, stream: Stream, codec: PerformanceCodecConfig, *,
                 clock: Callable[[], float] = time.monotonic, margin_s: float = START_MARGIN_S,
                 origin: float | None = None) -> None:
        """``origin``: the clock time due times count from, when a player already counts from it; the engine
        may move ``stream.started_at`` at any moment (a resumed pause), so it must be read once, not twice."""
        self.stream, self.clock, self.margin_s = stream, clock, margin_s
        self.decoder = PerformanceDecoder(codec, velocity=final_velocity(stream.spec.primer.tolist(), codec))
        self.origin = origin if origin is not None else stream.started_at or clock()
        self.lag_s: float | None = None  # how late the first token arrived after the music's time 0 (+ margin)
        self.first_note_at: float | None = None  # clock time the first note-on is due
        self.first_note_music_s: float | None = None  # its music time: the model's own rest before it

    @property
    def offset_s(self) -> float:
        """Due time minus music time: the time spent paused, and the start lag."""
        return (self.stream.started_at or self.origin) - self.origin + (self.lag_s or 0.0)

    def feed(self, token: int) -> list[TimedNote]:
        """The events ``token`` completes (in time order); the first token fixes the start lag."""
        if self.lag_s is None:  # measured from the music's time 0, which moves on by the time a stream spent
            # paused (e.g. listening to a jam phrase before answering)
            self.lag_s = max(0.0, self.clock() - (self.stream.started_at or self.origin) + self.margin_s)
        events = self.decoder.feed(token)
        if self.first_note_at is None and events:
            for ev in events:
                if ev.on:
                    self.first_note_music_s = ev.time_s
                    self.first_note_at = self.origin + self.due(ev)
                    break
        return events

    def due(self, ev: TimedNote) -> float:
        """Seconds after ``origin`` that ``ev`` is due."""
        return ev.time_s + self.offset_s

    def now(self) -> float:
        """Seconds since ``origin``."""
        return self.clock() - self.origin

    def end_s(self) -> float:
        """When the music decoded so far ends, in seconds after ``origin``."""
        return self.decoder.time_s + self.offset_s

    def release_all(self) -> list[TimedNote]:
        """Note-offs for every sounding note, at the current music time; nothing sounds afterwards."""
        return self.decoder.release_all()


class LivePlayback:
    """Plays one engine stream into a player (which may be on a ``PlayerHub``) until the stream ends or ``stop``
    is called. It has no thread of its own: the engine hands it each token as it is made (``Stream.attach``),
    and it decodes and schedules there, which costs microseconds, so a hundred streams need no hundred threads."""

    def __init__(self, stream: Stream, player: Player, codec: PerformanceCodecConfig, *, channel: int = 0,
                 on_event: Callable[[TimedNote], None] | None = None) -> None:
        self.stream, self.player, self.codec, self.channel = stream, player, codec, channel
        self.on_event = on_event
        self.done = threading.Event()
        self.timeline: Timeline | None = None  # made by ``start``, once the stream has started
        self._stopping = threading.Event()

    @property
    def first_note_at(self) -> float | None:
        """Engine/monotonic time the first note-on was scheduled for."""
        return None if self.timeline is None else self.timeline.first_note_at

    @property
    def first_note_music_s(self) -> float | None:
        return None if self.timeline is None else self.timeline.first_note_music_s

    def start(self, timeout_s: float = 30.0) -> LivePlayback:
        deadline = time.monotonic() + timeout_s
        while not self.stream.started_at and time.monotonic() < deadline:  # set when the engine admits it
            if self.stream.closed.is_set():
                break
            time.sleep(0.0005)
        origin = self.stream.started_at or time.monotonic()
        self.player.start(origin_s=origin)
        # the player's origin, not started_at read again: a jam answer's resume moves started_at on by the time
        # the stream spent listening, and due times counted from the moved value came that much early on the
        # player (its notes dropped as late)
        self.timeline = Timeline(self.stream, self.codec, clock=lambda: origin + self.player.piece_time(),
                                 origin=origin)
        self.stream.attach(self._on_token)
        return self

    def _schedule(self, timeline: Timeline, ev: TimedNote) -> None:
        # never wait for room here (this runs on the engine's thread): a full player is a failed playback
        self.player.schedule(timeline.due(ev), timed_message(ev, self.channel), timeout_s=0.0)
        if self.on_event is not None:
            self.on_event(ev)

    def _on_token(self, tok: int | None) -> None:
        """The engine's thread, for each token of the stream and None at its end."""
        timeline = self.timeline
        if self.done.is_set() or timeline is None:
            return
        try:
            if tok is None:
                if not self._stopping.is_set():  # on stop, the player releases what sounds and drops the rest
                    for ev in timeline.release_all():
                        self._schedule(timeline, ev)
                self.done.set()
                return
            if self._stopping.is_set():
                return
            for ev in timeline.feed(tok):
                self._schedule(timeline, ev)
        except Exception as exc:  # noqa: BLE001 - the player stopped (port vanished, or stopped by someone else): end the stream
            if not self._stopping.is_set():
                log.warning("live playback of stream %d ended: %s", self.stream.id, exc)
            self.stream.close()
            self.done.set()

    def pause(self) -> None:
        self.stream.pause()
        self.player.cancel()  # silence now: pending messages dropped, sounding notes released

    def resume(self) -> None:
        self.stream.resume()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Close the stream, then stop the player: every sounding note gets its note-off and nothing more is
        sent. Idempotent. (``timeout_s`` is kept for callers; nothing waits on a thread any more.)"""
        self._stopping.set()
        self.stream.close()
        self.player.stop()
        self.done.set()
