"""Jam without JACK: the knobs (CC -> temperature, density, key, conditioning, response length), continuous mode
(the model plays on; what the player plays is fed into its state and echoed on its own channel) and panic, on a
real engine with a tiny untrained model, into a port that records (``testing.midi.FakePort``). Everything waits
for an event to happen (bounded), never for a fixed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import mido
import pytest
import torch

from midi_io.capture import CaptureConfig, Control, ControlChange, PhraseCapture
from midi_io.echo import Echo
from midi_io.player import ALL_NOTES_OFF_CC
from performance_rnn.codecs.controls import CONTROL_DIM, control_vector
from performance_rnn.codecs.performance import (
    Event,
    EventType,
    PerformanceCodecConfig,
    encode_event,
    velocity_to_bin,
)
from performance_rnn.config import ModelConfig
from performance_rnn.heads import CategoricalHead
from performance_rnn.model import RecurrentModel
from performance_rnn.tasks.music.generate import MusicModel, controls_for, music_engine
from service.jam import Jam, JamConfig
from testing.midi import FakePort, unmatched_note_ons
from testing.waiting import wait_until

CC_TEMPERATURE, CC_DENSITY, CC_KEY, CC_RESPONSE, CC_CONDITIONING, CC_PANIC = 21, 22, 23, 24, 25, 26  # the default map


@pytest.fixture(scope="module")
def mm() -> MusicModel:
    """An untrained conditioned 1x16 music model that plays middle-register notes and short rests."""
    torch.manual_seed(0)
    codec = PerformanceCodecConfig()
    vocab = 256 + codec.max_shift_steps + codec.num_velocity_bins
    model = RecurrentModel(ModelConfig(input_size=vocab, hidden_size=16, num_layers=1, control_size=CONTROL_DIM,
                                       output_size=vocab)).eval()
    with torch.no_grad():
        model.out.bias[60:72] += 5.0  # note-ons C4..B4
        model.out.bias[128 + 60 : 128 + 72] += 5.0  # their note-offs
        model.out.bias[256:266] += 5.0  # rests of 10..100 ms
    return MusicModel(model, CategoricalHead(vocab), codec)


class Spy:
    """The engine's step model and head, recording what reaches them: every fed token sequence (primers and
    injected notes), every step's controls and sampling temperature."""

    def __init__(self, model: object, head: CategoricalHead) -> None:
        self.model, self.head = model, head
        self.num_params = head.num_params
        self.fed: list[list[int]] = []
        self.controls: list[list[float]] = []
        self.temperatures: list[float] = []

    def forward(self, inputs, state=None, controls=None):
        self.fed.append(inputs[0].tolist())
        return self.model.forward(inputs, state, controls)  # type: ignore[attr-defined]

    def step(self, inputs, state, controls):
        self.controls.append(controls[0].tolist())
        return self.model.step(inputs, state, controls)  # type: ignore[attr-defined]

    def sample(self, params, settings, generators):
        self.temperatures.append(float(settings.temperature[0]))
        return self.head.sample(params, settings, generators)

    def log_prob(self, params, targets):
        return self.head.log_prob(params, targets)


def cc(number: int, value: int) -> mido.Message:
    return mido.Message("control_change", control=number, value=value)


def test_knobs_map_onto_the_jam_settings(mm: MusicModel) -> None:
    """Each mapped CC, through the capture's control queue, sets what the next stream is generated with."""
    capture = PhraseCapture()
    jam = Jam(mm, music_engine(mm, fast=False), capture, FakePort(), JamConfig(response_s=3.0))
    for number, value in ((CC_TEMPERATURE, 127), (CC_DENSITY, 127), (CC_KEY, 64), (CC_RESPONSE, 8),
                          (CC_CONDITIONING, 0), (CC_PANIC, 127)):  # panic with nothing playing: nothing to do
        capture.feed(cc(number, value), 0.0)
        jam.apply_control(capture.controls.get_nowait())
    assert jam.sampling.temperature == pytest.approx(2.0)
    assert jam.density == 64.0 and jam.key == "F#" and jam.response_s == 2.0 and not jam.conditioning
    jam.apply_control(ControlChange(Control.TEMPERATURE, 0.1, CC_TEMPERATURE, 0, 0.0))
    jam.apply_control(ControlChange(Control.DENSITY, 0.0, CC_DENSITY, 0, 0.0))
    assert jam.sampling.temperature == pytest.approx(0.1) and jam.density == 1.0  # the knob's low end: 1 n/s


@dataclass
class Running:
    """A continuous jam on its own thread, its player's notes echoed on channel 2 (index 1)."""

    jam: Jam
    spy: Spy
    port: FakePort
    halt: threading.Event
    worker: threading.Thread

    def stop(self) -> list[mido.Message]:
        """End the jam (as ``perfrnn jam`` does on Ctrl-C) and return everything the port was sent."""
        self.halt.set()
        self.worker.join(timeout=10)
        assert not self.worker.is_alive()
        return self.port.messages


@pytest.fixture
def continuous(mm: MusicModel) -> Iterator[Running]:
    engine = music_engine(mm, fast=False)
    spy = Spy(engine.model, engine.head)  # type: ignore[arg-type]
    engine.model, engine.head = spy, spy
    port = FakePort()
    echo = Echo(port, 1)
    jam = Jam(mm, engine.start(), PhraseCapture(CaptureConfig(), passthrough=echo), port,
              JamConfig("continuous", lookahead_s=0.2, channel=0, seed=1), echo=echo)
    halt = threading.Event()
    run = Running(jam, spy, port, halt, threading.Thread(target=jam.run, args=(halt,), daemon=True))
    run.worker.start()
    try:
        yield run
    finally:
        run.stop()
        engine.stop()


def assert_silent(messages: list[mido.Message]) -> None:
    """Nothing left sounding: every note released, the model's and the echoed ones, and the echoed pedal up."""
    assert not unmatched_note_ons(messages)
    pedal = [m.value for m in messages if m.type == "control_change" and m.control == 64]
    assert not pedal or pedal[-1] == 0


def model_note_ons(port: FakePort) -> list[mido.Message]:
    return [m for m in port.messages if m.type == "note_on" and m.velocity > 0 and m.channel == 0]


def test_continuous_mode_takes_the_players_notes_and_the_knobs(continuous: Running, mm: MusicModel) -> None:
    jam, spy, port = continuous.jam, continuous.spy, continuous.port
    assert wait_until(lambda: len(model_note_ons(port)) >= 2)  # the model plays on its own

    jam.feed(mido.Message("note_on", channel=0, note=40, velocity=90), time.monotonic())
    c = mm.codec
    played = [encode_event(Event(EventType.VELOCITY, velocity_to_bin(90, c)), c),
              encode_event(Event(EventType.NOTE_ON, 40), c)]
    assert wait_until(lambda: played in spy.fed)  # fed into the stream's state as it was played
    assert mido.Message("note_on", channel=1, note=40, velocity=90) in port.messages  # and echoed on its channel

    for number, value in ((CC_TEMPERATURE, 0), (CC_DENSITY, 127), (CC_KEY, 0)):
        jam.feed(cc(number, value), time.monotonic())
    wanted = controls_for(mm, 64.0, "C")
    assert wanted is not None
    assert wait_until(lambda: spy.temperatures[-1] == pytest.approx(0.1) and spy.controls[-1] == wanted.tolist())
    assert not any(m.type == "control_change" for m in port.messages)  # mapped knobs are controls, not echoed

    jam.feed(cc(CC_CONDITIONING, 0), time.monotonic())  # conditioning off: the disable vector
    assert wait_until(lambda: spy.controls[-1] == control_vector(None, None).tolist())
    assert jam.listening is None  # continuous mode never opens a listening stream
    assert_silent(continuous.stop())


def test_panic_silences_the_model_at_once_and_it_plays_on(continuous: Running) -> None:
    jam, port = continuous.jam, continuous.port
    assert wait_until(lambda: len(model_note_ons(port)) >= 2)
    jam.feed(cc(CC_PANIC, 127), time.monotonic())
    assert wait_until(lambda: sum(m.type == "control_change" for m in port.messages) >= 16)
    msgs = port.messages
    first = next(i for i, m in enumerate(msgs) if m.type == "control_change")
    panic = msgs[first : first + 16]
    assert [(m.control, m.channel) for m in panic] == [(ALL_NOTES_OFF_CC, ch) for ch in range(16)]
    assert not unmatched_note_ons(msgs[:first])  # every sounding note released before the all-notes-off
    before = len(model_note_ons(port))
    assert wait_until(lambda: len(model_note_ons(port)) > before)  # a panic is no stop: the stream plays on
    assert sum(m.type == "control_change" for m in port.messages) == 16  # one press, one panic
    assert_silent(continuous.stop())


def test_stopping_leaves_nothing_sounding_the_players_held_notes_included(continuous: Running) -> None:
    jam, port = continuous.jam, continuous.port
    jam.feed(mido.Message("note_on", channel=0, note=40, velocity=90), time.monotonic())  # held, never released
    jam.feed(cc(64, 127), time.monotonic())  # and the pedal down
    assert wait_until(lambda: len(model_note_ons(port)) >= 2)
    assert (1, 40) in unmatched_note_ons(port.messages)
    messages = continuous.stop()
    assert_silent(messages)
    assert mido.Message("note_off", channel=1, note=40, velocity=0) in messages  # the echo released it
