"""Jamming with a MIDI controller.

Call-and-response: a captured phrase (ended by silence or the end-phrase CC) primes a response of a chosen
length, played into the output; the loop then listens again. The phrase is fed to the model while it is played
(a paused engine stream takes each note as it comes, ``PhraseEncoder``), so the answer starts as soon as the
phrase is judged over, not after priming it. Continuous: one endless stream plays, and every
note the player plays is fed into the model's state as it happens (``Stream.inject``). CC knobs change
temperature, density, key, conditioning and response length; the panic CC silences everything.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import mido
import torch

from midi_io.capture import Control, ControlChange, PhraseCapture
from midi_io.echo import Echo
from midi_io.player import Player, PlayerConfig
from midi_io.ports import OutputPort
from performance_rnn.codecs.performance import Event, EventType, PhraseEncoder, encode_event, velocity_to_bin
from performance_rnn.config import SamplingConfig
from performance_rnn.engine import Engine, EngineBusy, Stream, StreamSpec
from performance_rnn.tasks.music.generate import MusicModel, controls_for, stream_spec
from service.playback import LivePlayback

log = logging.getLogger(__name__)
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class JamConfig:
    mode: str = "call"  # "call" (call-and-response) or "continuous"
    response_s: float = 0.0  # response length; 0 = as long as the phrase
    lookahead_s: float = 0.2
    channel: int = 0  # the model's MIDI channel, 0..15 (the CLI takes 1..16)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("call", "continuous"):
            raise ValueError(f"mode must be 'call' or 'continuous', got {self.mode!r}")
        if not 0 <= self.response_s <= 120:
            raise ValueError("response length must be in range 0..120 s")


@dataclass
class _Listening:
    """The phrase being played, fed to a paused stream as it comes (call mode)."""

    encoder: PhraseEncoder
    stream: Stream


class Jam:
    """Runs one jam session on an engine, between a capture (fed by an input port) and an output port."""

    def __init__(self, mm: MusicModel, engine: Engine, capture: PhraseCapture, out: OutputPort,
                 config: JamConfig = JamConfig(), *, echo: Echo | None = None) -> None:
        """``echo``: the capture's passthrough, if any (released when the jam ends)."""
        self.mm, self.engine, self.capture, self.out, self.config = mm, engine, capture, out, config
        self.echo = echo
        self.sampling = SamplingConfig()
        self.density: float | None = None
        self.key: str | None = None
        self.conditioning = True
        self.response_s = config.response_s
        self.responses = 0
        self._live: LivePlayback | None = None
        self._seed = config.seed
        self._lock = threading.Lock()
        self._listening: _Listening | None = None  # call mode: the phrase being played, primed as it is played
        self._answering = False  # call mode: an answer plays (what is played meanwhile is not the next call)
        self._pedal = False
        self.judged_at: float | None = None  # when the last phrase was judged over (clock time)

    @property
    def listening(self) -> Stream | None:
        """Call mode: the paused stream taking the phrase being played (None between phrases)."""
        listening = self._listening
        return None if listening is None else listening.stream

    # ---- input side (the input port's thread) ----
    def feed(self, msg: mido.Message, time_s: float) -> None:
        """The input callback: capture the message; in continuous mode feed notes into the model."""
        self.capture.feed(msg, time_s)
        if self.config.mode == "continuous" and msg.type in ("note_on", "note_off"):
            live = self._live
            if live is not None:
                live.stream.inject(self._tokens(msg))
        elif self.config.mode == "call":
            self._listen(msg, time_s)

    def _listen(self, msg: mido.Message, t: float) -> None:
        """Feed a note or pedal change of the phrase being played into its paused stream (opened at its first
        note). If the engine is full the phrase is primed when it ends instead."""
        channel = self.capture.config.channel
        if channel is not None and getattr(msg, "channel", channel) != channel:
            return
        is_pedal = msg.type == "control_change" and msg.control == 64
        if not (is_pedal or msg.type in ("note_on", "note_off")):
            return
        with self._lock:
            if is_pedal:
                self._pedal = msg.value >= 64
            if self._answering:
                return
            listening = self._listening
            if listening is None:
                if msg.type != "note_on" or msg.velocity == 0:
                    return
                encoder = PhraseEncoder(self.mm.codec, t, sustain=self.capture.config.apply_sustain, pedal=self._pedal)
                spec = stream_spec(self.mm, seed=self._seed, sampling=self.sampling,
                                   lookahead_s=self.config.lookahead_s)
                spec = StreamSpec(torch.tensor(encoder.note_on(msg.note, msg.velocity, t)), spec.sampling, spec.seed,
                                  self._controls(), spec.lookahead_s, paused=True)
                try:
                    self._listening = _Listening(encoder, self.engine.open(spec))
                except EngineBusy:
                    log.warning("the engine is full: this phrase is primed when it ends")
                return
            enc = listening.encoder
            tokens = (enc.pedal_change(self._pedal, t) if is_pedal else
                      enc.note_on(msg.note, msg.velocity, t) if msg.type == "note_on" and msg.velocity > 0 else
                      enc.note_off(msg.note, t))
            if tokens:
                listening.stream.inject(tokens)

    def _tokens(self, msg: mido.Message) -> list[int]:
        c = self.mm.codec
        if msg.type == "note_on" and msg.velocity > 0:
            return [encode_event(Event(EventType.VELOCITY, velocity_to_bin(msg.velocity, c)), c),
                    encode_event(Event(EventType.NOTE_ON, msg.note), c)]
        return [encode_event(Event(EventType.NOTE_OFF, msg.note), c)]

    # ---- controls ----
    def apply_control(self, change: ControlChange) -> None:
        if change.control is Control.TEMPERATURE:
            self.sampling = SamplingConfig(change.value, self.sampling.top_k, self.sampling.top_p)
        elif change.control is Control.DENSITY:
            self.density = 2.0 ** (change.value * 6.0)  # 0..1 -> 1..64 notes per second, the density bins
        elif change.control is Control.KEY:
            self.key = PITCH_NAMES[int(change.value) % 12]
        elif change.control is Control.CONDITIONING:
            self.conditioning = change.value >= 0.5
        elif change.control is Control.RESPONSE_LENGTH:
            self.response_s = change.value
        elif change.control is Control.PANIC:
            live = self._live
            if live is not None:
                live.player.panic()
            return
        live = self._live
        if live is not None:  # knobs reach the playing stream within the lookahead
            live.stream.set_sampling(self.sampling)
            live.stream.set_controls(self._controls())
        log.info("control %s = %.2f", change.control, change.value)

    def _controls(self):  # type: ignore[no-untyped-def]
        if not self.mm.conditioned or not self.conditioning or (self.density is None and self.key is None):
            return None
        return controls_for(self.mm, self.density, self.key)

    # ---- output side ----
    def _play(self, primer: list | None, seconds: float | None) -> LivePlayback:
        spec = stream_spec(self.mm, seed=self._seed, sampling=self.sampling, primer=primer,
                           lookahead_s=self.config.lookahead_s, max_seconds=seconds)
        spec.controls = self._controls()
        self._seed += 1
        return self._playback(self.engine.open(spec))

    def _playback(self, stream: Stream) -> LivePlayback:
        player = Player(self.out, PlayerConfig(channel=self.config.channel))
        self._live = LivePlayback(stream, player, self.mm.codec, channel=self.config.channel).start()
        return self._live

    def run(self, stop: threading.Event, poll_s: float = 0.01) -> None:
        """Jam until ``stop`` is set; leaves no note sounding."""
        try:
            if self.config.mode == "continuous":
                live = self._play(None, None)
                while not stop.is_set() and not live.done.is_set():
                    self._drain_controls()
                    stop.wait(poll_s)
                return
            while not stop.is_set():
                self._drain_controls()
                phrase = self.capture.poll()
                now = time.monotonic()  # the input's clock (``open_input``'s default)
                if phrase:
                    self.judged_at = now
                    length = self.response_s or max(n.end_s for n in phrase)
                    log.info("heard %d notes; answering for %.1f s", len(phrase), length)
                    live = self._answer(phrase, length, now)
                    while not stop.is_set() and not live.done.is_set():
                        self._drain_controls()
                        stop.wait(poll_s)
                    if not stop.is_set():
                        live.player.wait_idle(timeout_s=length + 5)
                        live.stop()
                    self.responses += 1
                    with self._lock:
                        self.capture.reset()  # what was played during the response is not the next call
                        self._answering = False
                elif not self.capture.capturing:
                    self._drop_listening()  # the capture let a too-short phrase go: so does the model
                stop.wait(poll_s)
        finally:  # nothing left sounding: the model's notes, then the player's passed-through ones
            self._drop_listening()
            if self._live is not None:
                self._live.stop()
            if self.echo is not None:
                self.echo.release()

    def _answer(self, phrase: list, length: float, now: float) -> LivePlayback:
        """Play the answer: resume the stream that took the phrase as it was played, or prime one from it."""
        with self._lock:
            listening, self._listening = self._listening, None
            self._answering = True
        if listening is None or listening.stream.closed.is_set():
            return self._play(phrase, length)
        stream = listening.stream
        tail = listening.encoder.release_all(now)  # keys still down when the phrase was judged over
        if tail:
            stream.inject(tail)
        stream.set_sampling(self.sampling)  # knobs turned while the phrase was played
        stream.set_controls(self._controls())
        stream.resume(max_seconds=length)
        self._seed += 1
        return self._playback(stream)

    def _drop_listening(self) -> None:
        with self._lock:
            listening, self._listening = self._listening, None
        if listening is not None:
            listening.stream.close()

    def _drain_controls(self) -> None:
        while not self.capture.controls.empty():
            self.apply_control(self.capture.controls.get_nowait())


def wait_for(cond, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False
