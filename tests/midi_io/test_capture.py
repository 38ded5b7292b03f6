"""Phrase capture and CC mapping, fed messages with explicit clock times (no ports, no threads)."""

from __future__ import annotations

import mido
import pytest

from midi_io.capture import CaptureConfig, CCMap, Control, PhraseCapture, control_value
from midi_io.notes import Note


def on(pitch: int, velocity: int = 80, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)


def off(pitch: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", channel=channel, note=pitch, velocity=0)  # running-status style note-off


def cc(number: int, value: int) -> mido.Message:
    return mido.Message("control_change", control=number, value=value)


def test_cc_map_default_and_round_trip() -> None:
    default = CCMap()
    assert default.control_for(21) is Control.TEMPERATURE and default.control_for(64) is None
    assert str(default) == "21=temperature,22=density,23=key,24=response_length,25=conditioning,26=panic,27=end_phrase"
    assert CCMap.parse(str(default)) == default
    assert CCMap.parse(" 7 = Temperature , 64=end_phrase,") == CCMap(
        ((7, Control.TEMPERATURE), (64, Control.END_PHRASE))
    )
    assert CCMap.parse("").pairs == ()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("21=volume", "controls: temperature"),
        ("128=key", "0..127"),
        ("21=key,21=density", "twice"),
        ("21", "look like"),
        ("x=key", "look like"),
    ],
)
def test_cc_map_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CCMap.parse(text)


@pytest.mark.parametrize(
    ("control", "raw", "expected"),
    [
        (Control.TEMPERATURE, 0, 0.1),
        (Control.TEMPERATURE, 127, 2.0),  # linear, as Magenta
        (Control.DENSITY, 127, 1.0),
        (Control.KEY, 0, 0),
        (Control.KEY, 127, 11),
        (Control.KEY, 64, 6),
        (Control.RESPONSE_LENGTH, 0, 0.0),
        (Control.RESPONSE_LENGTH, 32, 8.0),
        (Control.CONDITIONING, 63, 0.0),
        (Control.CONDITIONING, 64, 1.0),
    ],
)
def test_control_value(control: Control, raw: int, expected: float) -> None:
    assert control_value(control, raw) == pytest.approx(expected)


def test_a_phrase_ends_after_the_silence_with_no_key_held() -> None:
    capture = PhraseCapture(CaptureConfig(silence_s=1.0))
    for t, msg in [(10.0, on(60, 100)), (10.5, on(64)), (10.625, off(60)), (11.0, off(64))]:
        capture.feed(msg, t)
    assert capture.poll(11.9) is None
    assert capture.poll(12.0) == [Note(60, 100, 0.0, 0.625), Note(64, 80, 0.5, 1.0)]
    assert capture.poll(20.0) is None  # returned once


def test_a_held_key_keeps_the_phrase_open_until_max_phrase_s() -> None:
    capture = PhraseCapture(CaptureConfig(silence_s=1.0, max_phrase_s=5.0))
    capture.feed(on(60), 0.0)
    capture.feed(on(62), 0.1)
    capture.feed(off(62), 0.2)
    assert capture.held == {60}
    assert capture.poll(4.9) is None
    assert capture.poll(5.0) == [Note(60, 80, 0.0, 5.0), Note(62, 80, 0.1, 0.2)]
    assert capture.held == frozenset()


def test_sustain_pedal_lengthens_captured_notes() -> None:
    capture = PhraseCapture()
    for t, msg in [(0.0, cc(64, 127)), (1.0, on(60)), (1.2, off(60)), (1.5, cc(64, 0)), (1.5, on(62)), (1.7, off(62))]:
        capture.feed(msg, t)
    assert capture.poll(3.0) == [Note(60, 80, 0.0, 0.5), Note(62, 80, 0.5, 0.7)]


def test_buttons_fire_on_press_and_end_phrase_ends_the_phrase() -> None:
    seen = []
    capture = PhraseCapture(on_control=seen.append)
    capture.feed(on(60), 0.0)
    capture.feed(cc(27, 127), 0.1)  # end_phrase while the key is held
    capture.feed(cc(27, 0), 0.2)  # release: nothing
    capture.feed(cc(26, 127), 0.3)  # panic
    assert capture.poll(0.3) == [Note(60, 80, 0.0, 0.3)]
    assert [(c.control, c.value, c.time_s) for c in seen] == [(Control.END_PHRASE, 1.0, 0.1), (Control.PANIC, 1.0, 0.3)]
    assert [capture.controls.get_nowait().control for _ in range(2)] == [Control.END_PHRASE, Control.PANIC]


def test_knob_changes_are_queued_and_the_newest_survive_overflow() -> None:
    capture = PhraseCapture(CaptureConfig(max_controls=2))
    for value in (0, 64, 127):
        capture.feed(cc(21, value), 1.0)
    values = [capture.controls.get_nowait().value for _ in range(capture.controls.qsize())]
    assert values == pytest.approx([control_value(Control.TEMPERATURE, 64), 2.0])


def test_passthrough_echoes_notes_and_pedal_but_not_mapped_controls(make_port) -> None:
    port = make_port()
    capture = PhraseCapture(passthrough=port)
    for msg in (on(60), cc(21, 10), cc(64, 127), off(60), mido.Message("pitchwheel", pitch=100)):
        capture.feed(msg, 0.0)
    assert port.messages == [on(60), cc(64, 127), off(60)]


def test_a_failing_passthrough_is_disabled_and_capture_goes_on(make_port) -> None:
    port = make_port(fail_on=1)
    capture = PhraseCapture(passthrough=port)
    capture.feed(on(60), 0.0)
    capture.feed(off(60), 0.5)
    assert port.messages == [] and capture.poll(2.0) == [Note(60, 80, 0.0, 0.5)]


def test_channel_filter_and_min_notes() -> None:
    capture = PhraseCapture(CaptureConfig(channel=1, min_notes=2))
    capture.feed(on(60, channel=0), 0.0)  # other channel: ignored
    capture.feed(on(62, channel=1), 0.0)
    capture.feed(off(62, channel=1), 0.1)
    assert capture.poll(5.0) is None  # one note < min_notes: discarded
    assert capture.held == frozenset()


def test_capture_config_is_validated() -> None:
    with pytest.raises(ValueError, match="channel"):
        CaptureConfig(channel=16)
    with pytest.raises(ValueError, match="silence_s"):
        CaptureConfig(silence_s=0)
