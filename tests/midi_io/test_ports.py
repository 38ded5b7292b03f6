"""Ports: API choice and name matching as pure functions; then real virtual ports on JACK (marked ``jack``)."""

from __future__ import annotations

import time

import mido
import pytest

from midi_io import ports
from midi_io.errors import PortUnavailableError
from midi_io.ports import choose_api, find_port


def never() -> bool:
    return False


def always() -> bool:
    return True


@pytest.mark.parametrize(
    ("compiled", "platform", "alsa_ok", "jack", "expected"),
    [
        (("coremidi", "jack"), "darwin", False, always, "coremidi"),
        (("winmm",), "win32", False, never, "winmm"),
        (("alsa", "jack"), "linux", True, always, "alsa"),  # ALSA first when its sequencer works
        (("alsa", "jack"), "linux", False, always, "jack"),  # no /dev/snd/seq (containers, CI): JACK
        (("jack",), "linux", False, always, "jack"),
    ],
)
def test_choose_api(compiled, platform, alsa_ok, jack, expected) -> None:
    assert choose_api(compiled, platform=platform, alsa_ok=alsa_ok, jack_running=jack) == expected


def test_choose_api_says_what_to_start_when_nothing_works() -> None:
    with pytest.raises(PortUnavailableError, match="jackd"):
        choose_api(("alsa", "jack"), platform="linux", alsa_ok=False, jack_running=never)


def test_unknown_api_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="alsa, jack, coremidi, winmm"):
        ports.resolve_api("pulse")


def test_find_port_prefers_exact_then_a_unique_substring() -> None:
    names = ["Midi Through:Midi Through Port-0 14:0", "Performance RNN:Performance RNN 128:0", "Performance"]
    assert find_port(names, "Performance") == 2
    assert find_port(names, "performance rnn") == 1
    with pytest.raises(PortUnavailableError, match="several"):
        find_port(names, "mance")
    with pytest.raises(PortUnavailableError, match=r"no port.*Midi Through"):
        find_port(names, "Digitakt")


def test_virtual_ports_on_windows_point_to_loopmidi(monkeypatch) -> None:
    monkeypatch.setattr(ports, "resolve_api", lambda api=None: "winmm")
    with pytest.raises(PortUnavailableError, match="loopMIDI"):
        ports.open_virtual_output("Performance RNN")
    with pytest.raises(PortUnavailableError, match="loopMIDI"):
        ports.open_input("Performance RNN in", lambda msg, t: None, virtual=True)


class BrokenMidiOut:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def send_message(self, data: list[int]) -> None:
        raise self.error

    def close_port(self) -> None: ...

    def delete(self) -> None: ...


def test_send_failures_and_closed_ports_raise_port_unavailable() -> None:
    rtmidi = pytest.importorskip("rtmidi")
    out = ports.RtMidiOutput(BrokenMidiOut(rtmidi.SystemError("gone")), rtmidi, "Synth", "alsa")
    with pytest.raises(PortUnavailableError, match=r"Synth.*gone"):
        out.send(mido.Message("note_on", note=60))
    out.close()
    with pytest.raises(PortUnavailableError, match="closed"):
        out.send(mido.Message("note_on", note=60))


# ---- through a real JACK server -------------------------------------------------------------------------


def send_until_received(out: ports.RtMidiOutput, msg: mido.Message, got: list, timeout_s: float = 5.0) -> None:
    """Resend until something arrives: a new JACK connection carries nothing for a cycle or more."""
    deadline = time.monotonic() + timeout_s
    while not got:
        assert time.monotonic() < deadline, "nothing arrived"
        out.send(msg)
        time.sleep(0.01)
    time.sleep(0.05)  # let resent copies land


@pytest.mark.jack
def test_jack_virtual_output_is_listed_and_reaches_an_input(jack_port_name) -> None:
    got: list[tuple[mido.Message, float]] = []
    msg = mido.Message("note_on", channel=1, note=60, velocity=99)
    with ports.open_virtual_output(jack_port_name, api="jack") as out:
        listing = ports.list_ports("jack")
        assert f"{jack_port_name}:{jack_port_name}" in listing.inputs  # others read from our output
        with ports.open_input(jack_port_name, lambda m, t: got.append((m, t)), api="jack") as midi_in:
            assert midi_in.name.endswith(jack_port_name)
            started = time.monotonic()
            send_until_received(out, msg, got)
    assert all(m == msg for m, _ in got)
    assert all(started <= t <= time.monotonic() for _, t in got)  # stamped on the monotonic clock


@pytest.mark.jack
def test_jack_connect_output_by_substring_to_a_virtual_input(jack_port_name) -> None:
    got: list[mido.Message] = []
    msg = mido.Message("control_change", control=21, value=64)
    with (
        ports.open_input(jack_port_name, lambda m, t: got.append(m), virtual=True, api="jack"),
        ports.connect_output(jack_port_name[-8:].upper(), api="jack") as out,
    ):
        assert out.name.endswith(jack_port_name)
        send_until_received(out, msg, got)
    assert all(m == msg for m in got)


@pytest.mark.jack
def test_jack_connecting_to_a_missing_port_fails_clearly(jack_server) -> None:
    with pytest.raises(PortUnavailableError, match="no port"):
        ports.connect_output("no such synth", api="jack")


@pytest.mark.jack
def test_jack_open_output_creates_a_virtual_port_when_none_matches(jack_port_name) -> None:
    with ports.open_output(jack_port_name, api="jack") as out:
        assert out.name == jack_port_name and f"{jack_port_name}:{jack_port_name}" in ports.list_ports("jack").inputs
