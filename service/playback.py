"""Live playback: an engine stream's tokens -> timed notes -> MIDI messages on a ``Player``, in real time.

The player's time 0 is the stream's start on the engine clock (both ``time.monotonic``), so an event is
scheduled ``lookahead`` ahead of its due time. The first token arrives after that start (a step later, more
with many streams admitted at once), so the whole stream is due that much (plus ``START_MARGIN_S``) later: its
opening notes go out as soon as they exist, in rhythm, rather than late or dropped. Tokens are decoded and
scheduled on the engine's thread as they are made (``Stream.attach``). Stopping closes the stream, then stops the
player, which releases every sounding note; pausing silences the sounding notes and the music clock waits.
Many playbacks can share one emitting thread: give each a ``Player(port, config, hub=hub)`` on one
``midi_io.player.PlayerHub``.
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
from performance_rnn.codecs.live import LiveDecoder, TimedNote
from performance_rnn.codecs.performance import PerformanceCodecConfig, final_velocity
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


class LivePlayback:
    """Plays one engine stream into a player (which may be on a ``PlayerHub``) until the stream ends or ``stop``
    is called. It has no thread of its own: the engine hands it each token as it is made (``Stream.attach``),
    and it decodes and schedules there, which costs microseconds, so a hundred streams need no hundred threads."""

    def __init__(self, stream: Stream, player: Player, codec: PerformanceCodecConfig, *, channel: int = 0,
                 on_event: Callable[[TimedNote], None] | None = None) -> None:
        self.stream, self.player, self.channel = stream, player, channel
        self.decoder = LiveDecoder(codec, velocity=final_velocity(stream.spec.primer.tolist(), codec))
        self.on_event = on_event
        self.done = threading.Event()
        self.first_note_at: float | None = None  # engine/monotonic time the first note-on was scheduled for
        self.first_note_music_s: float | None = None
        self._origin = 0.0
        self._start_lag: float | None = None  # how late the first token arrived after the stream's start
        self._stopping = threading.Event()

    def start(self, timeout_s: float = 30.0) -> LivePlayback:
        deadline = time.monotonic() + timeout_s
        while not self.stream.started_at and time.monotonic() < deadline:  # set when the engine admits it
            if self.stream.closed.is_set():
                break
            time.sleep(0.0005)
        self._origin = self.stream.started_at or time.monotonic()
        self.player.start(origin_s=self._origin)
        self.stream.attach(self._on_token)
        return self

    def _schedule(self, ev: TimedNote) -> None:
        offset = (self.stream.started_at or self._origin) - self._origin  # grows by the time spent paused
        offset += self._start_lag or 0.0
        if ev.on and self.first_note_at is None:
            self.first_note_at = self._origin + offset + ev.time_s
            self.first_note_music_s = ev.time_s  # the model's own rest before its first note
        # never wait for room here (this runs on the engine's thread): a full player is a failed playback
        self.player.schedule(ev.time_s + offset, timed_message(ev, self.channel), timeout_s=0.0)
        if self.on_event is not None:
            self.on_event(ev)

    def _on_token(self, tok: int | None) -> None:
        """The engine's thread, for each token of the stream and None at its end."""
        if self.done.is_set():
            return
        try:
            if tok is None:
                if not self._stopping.is_set():  # on stop, the player releases what sounds and drops the rest
                    for ev in self.decoder.release_all():
                        self._schedule(ev)
                self.done.set()
                return
            if self._stopping.is_set():
                return
            if self._start_lag is None:  # how late the first token came after the music's time 0 (which
                # moves on by the time a stream spent paused, e.g. listening to a jam phrase before answering)
                started = (self.stream.started_at or self._origin) - self._origin
                self._start_lag = max(0.0, self.player.piece_time() - started + START_MARGIN_S)
            for ev in self.decoder.feed(tok):
                self._schedule(ev)
        except Exception as exc:  # the player stopped (port vanished, or stopped by someone else): end the stream
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
