"""MIDI ports through python-rtmidi: virtual outputs (ALSA, CoreMIDI, JACK), named ports, listing, input.

rtmidi is imported inside functions, so importing midi_io works on a machine without it. API names are
"alsa", "jack", "coremidi" and "winmm" (Windows, which has no virtual ports: use loopMIDI and connect by name).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, Self, runtime_checkable

import mido

from midi_io.errors import PortUnavailableError

logger = logging.getLogger(__name__)

_RTMIDI_API = {
    "alsa": "API_LINUX_ALSA",
    "jack": "API_UNIX_JACK",
    "coremidi": "API_MACOSX_CORE",
    "winmm": "API_WINDOWS_MM",
}
API_NAMES = tuple(_RTMIDI_API)
ALSA_SEQ_DEVICE = "/dev/snd/seq"
LOOPMIDI_HINT = (
    "Windows has no virtual MIDI ports: install loopMIDI (https://www.tobias-erichsen.de/software/loopmidi.html), "
    "create a port there, and connect to it by name"
)


class OutputPort(Protocol):
    """Where the player sends messages: an rtmidi port, or a fake in tests."""

    def send(self, msg: mido.Message) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class TimedOutputPort(OutputPort, Protocol):
    """An output that places each message at its due time itself (``midi_io.jack_timed.TimedJackOutput``):
    the player hands messages over ``lead_s`` early with ``send_at``; ``drop_pending`` forgets what it holds
    and releases the notes it left sounding."""

    lead_s: float

    def send_at(self, msg: mido.Message, due_s: float) -> None: ...

    def drop_pending(self) -> None: ...


@dataclass(frozen=True)
class PortList:
    """Port names visible through one API: ``inputs`` can be read from, ``outputs`` can be sent to."""

    api: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def choose_api(compiled: Collection[str], *, platform: str, alsa_ok: bool, jack_running: Callable[[], bool]) -> str:
    """Pick the API for this machine: CoreMIDI on macOS, WinMM on Windows, ALSA on Linux when its sequencer
    device is usable, else JACK when a JACK server runs. Pure, so the rules are testable.

    Raises:
        PortUnavailableError: nothing usable (the message says what to start or install).
    """
    if platform == "darwin" and "coremidi" in compiled:
        return "coremidi"
    if platform == "win32" and "winmm" in compiled:
        return "winmm"
    if "alsa" in compiled and alsa_ok:
        return "alsa"
    if "jack" in compiled and jack_running():
        return "jack"
    raise PortUnavailableError(
        f"no usable MIDI API (compiled in: {', '.join(sorted(compiled)) or 'none'}): the ALSA sequencer "
        f"{ALSA_SEQ_DEVICE} is missing (load snd-seq) and no JACK server runs (start one, e.g. "
        "`jackd --no-realtime -d dummy`)"
    )


def resolve_api(api: str | None = None) -> str:
    """``api`` checked against the compiled-in APIs, or chosen automatically when None.

    Raises:
        ValueError: unknown API name.  PortUnavailableError: not compiled in, or none usable.
    """
    if api is not None and api not in _RTMIDI_API:
        raise ValueError(f"api must be one of {', '.join(API_NAMES)} or None, got {api!r}")
    compiled = compiled_apis()
    if api is not None:
        if api not in compiled:
            raise PortUnavailableError(f"python-rtmidi was built without {api!r} (it has: {', '.join(compiled)})")
        return api
    alsa_ok = os.access(ALSA_SEQ_DEVICE, os.R_OK | os.W_OK)
    return choose_api(compiled, platform=sys.platform, alsa_ok=alsa_ok, jack_running=jack_running)


def compiled_apis() -> tuple[str, ...]:
    """The API names python-rtmidi was built with, e.g. ("alsa", "jack")."""
    rtmidi = _rtmidi()
    by_value = {getattr(rtmidi, const): name for name, const in _RTMIDI_API.items() if hasattr(rtmidi, const)}
    return tuple(by_value[a] for a in rtmidi.get_compiled_api() if a in by_value)


def jack_running() -> bool:
    """True when a JACK client can be opened (libjack logs to stderr when it cannot)."""
    rtmidi = _rtmidi()
    try:
        probe = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="perfrnn-probe")
    except rtmidi.RtMidiError:
        return False
    probe.delete()
    return True


def list_ports(api: str | None = None) -> PortList:
    """Names of the input and output ports visible through ``api`` (chosen automatically when None)."""
    api = resolve_api(api)
    rtmidi = _rtmidi()
    try:
        midi_in = rtmidi.MidiIn(rtapi=_api_const(rtmidi, api), name="perfrnn-list")
        midi_out = rtmidi.MidiOut(rtapi=_api_const(rtmidi, api), name="perfrnn-list")
    except rtmidi.RtMidiError as exc:
        raise PortUnavailableError(f"cannot open a {api} MIDI client: {exc}") from exc
    try:
        return PortList(api, tuple(midi_in.get_ports()), tuple(midi_out.get_ports()))
    finally:
        midi_in.delete()
        midi_out.delete()


def find_port(names: Collection[str], wanted: str) -> int:
    """Index of the port called ``wanted``: an exact name, else the one name containing it (case-insensitive).

    Raises:
        PortUnavailableError: no match, or several (the message lists them).
    """
    names = list(names)
    if wanted in names:
        return names.index(wanted)
    hits = [i for i, n in enumerate(names) if wanted.lower() in n.lower()]
    if len(hits) == 1:
        return hits[0]
    found = ", ".join(repr(n) for n in names) or "none"
    reason = "matches several ports" if hits else "matches no port"
    raise PortUnavailableError(f"{wanted!r} {reason}; ports: {found}")


JACK_DRAIN_S = 0.05  # many JACK periods (64 frames at 48 kHz is 1.3 ms), also on a loaded machine


class RtMidiOutput:
    """An open rtmidi output as an ``OutputPort``. ``name`` is how other programs see it."""

    def __init__(self, midi_out: Any, rtmidi: ModuleType, name: str, api: str) -> None:
        self._out = midi_out
        self._error: type[Exception] = rtmidi.RtMidiError
        self.name = name
        self.api = api
        self.closed = False

    def send(self, msg: mido.Message) -> None:
        """Send one message now. Raises PortUnavailableError when the port is closed or the send fails."""
        if self.closed:
            raise PortUnavailableError(f"output {self.name!r} is closed")
        try:
            self._out.send_message(msg.bytes())
        except (self._error, OSError) as exc:
            raise PortUnavailableError(f"output {self.name!r} failed to send {msg}: {exc}") from exc

    def close(self) -> None:
        """Close the port. On JACK, first give the server a few process cycles to deliver what was just sent:
        this rtmidi build closes without waiting for its ring buffer, so the final note-offs could be lost."""
        if not self.closed:
            self.closed = True
            if self.api == "jack":
                time.sleep(JACK_DRAIN_S)
            self._out.close_port()
            self._out.delete()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RtMidiInput:
    """An open rtmidi input. A thread polls rtmidi's queue every ``poll_s`` and calls ``callback(msg, time_s)``
    (``time_s`` on the ``now`` clock, spread within a batch by rtmidi's deltas). Polling rather than an rtmidi
    callback, so that JACK's process thread never waits for the GIL (JACK drops events when it does).
    """

    def __init__(
        self,
        midi_in: Any,
        name: str,
        api: str,
        callback: Callable[[mido.Message, float], None],
        now: Callable[[], float] = time.monotonic,
        poll_s: float = 0.002,
    ) -> None:
        self._in, self.name, self.api = midi_in, name, api
        self._callback, self._now, self._poll_s = callback, now, poll_s
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"midi-in {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.wait(self._poll_s):
            batch = []
            while (event := self._in.get_message()) is not None:
                batch.append(event)  # (bytes, seconds since the previous message)
            t = self._now()
            stamped = []
            for data, delta_s in reversed(batch):
                stamped.append((data, t))
                t -= delta_s
            for data, time_s in reversed(stamped):
                self._dispatch(data, time_s)

    def _dispatch(self, data: list[int], time_s: float) -> None:
        try:
            msg = mido.Message.from_bytes(data)
        except (ValueError, TypeError) as exc:
            logger.debug("skipped unparsable MIDI input %s: %s", data, exc)
            return
        try:
            self._callback(msg, time_s)
        except Exception:  # a failing handler must not kill the input (cf. magenta#860)
            logger.exception("MIDI input callback failed on %s", msg)

    def close(self) -> None:
        if not self._closing.is_set():
            self._closing.set()
            self._thread.join()
            self._in.close_port()
            self._in.delete()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_virtual_output(name: str = "Performance RNN", *, api: str | None = None) -> RtMidiOutput:
    """Create an output port called ``name`` that DAWs and synths can connect to (its client has the same name).

    Raises:
        PortUnavailableError: on Windows (use loopMIDI), or when the API cannot create the port.
    """
    api = resolve_api(api)
    if api == "winmm":
        raise PortUnavailableError(LOOPMIDI_HINT)
    rtmidi = _rtmidi()
    try:
        midi_out = rtmidi.MidiOut(rtapi=_api_const(rtmidi, api), name=name)
        midi_out.open_virtual_port(name)
    except rtmidi.RtMidiError as exc:
        raise PortUnavailableError(f"cannot open virtual {api} output {name!r}: {exc}") from exc
    logger.info("opened virtual %s output %r", api, name)
    return RtMidiOutput(midi_out, rtmidi, name, api)


def connect_output(name: str, *, api: str | None = None, client_name: str = "perfrnn") -> RtMidiOutput:
    """Connect to an existing output port (a synth, a DAW input, loopMIDI) by exact name or unique substring.

    Raises:
        PortUnavailableError: no such port, several match, or the API fails.
    """
    api = resolve_api(api)
    rtmidi = _rtmidi()
    try:
        midi_out = rtmidi.MidiOut(rtapi=_api_const(rtmidi, api), name=client_name)
    except rtmidi.RtMidiError as exc:
        raise PortUnavailableError(f"cannot open a {api} MIDI client: {exc}") from exc
    try:
        ports = midi_out.get_ports()
        index = find_port(ports, name)
        midi_out.open_port(index, "out")
    except (rtmidi.RtMidiError, PortUnavailableError) as exc:
        midi_out.delete()
        hint = f". {LOOPMIDI_HINT}" if api == "winmm" else ""
        raise PortUnavailableError(f"cannot connect {api} output to {name!r}: {exc}{hint}") from exc
    logger.info("connected %s output to %r", api, ports[index])
    return RtMidiOutput(midi_out, rtmidi, ports[index], api)


def open_output(
    name: str = "Performance RNN", *, virtual: bool | None = None, api: str | None = None, timed: bool | None = None
) -> OutputPort:
    """Connect to the port ``name`` when ``virtual`` is False; create it when True; when None (as Magenta's
    midi_hub) connect if such a port exists, else create a virtual one (on Windows: connect only).

    On JACK the port is frame-accurate (``midi_io.jack_timed.TimedJackOutput``: each message written at the frame
    of its due time) unless ``timed`` is False; with ``timed`` None it falls back to rtmidi, with a warning, when
    that cannot be built here. ``timed=True`` insists on it.

    Raises:
        PortUnavailableError: no such port, or the API fails; ``timed=True`` off JACK or unavailable.
    """
    if virtual is None:
        api = resolve_api(api)
        names = list_ports(api).outputs
        virtual = api != "winmm" and not any(name.lower() in n.lower() for n in names)
    if timed is not False:
        api = resolve_api(api)
        if api == "jack":
            try:
                return _open_timed_jack(name, virtual=virtual)
            except PortUnavailableError as exc:
                if timed:
                    raise
                logger.warning("frame-accurate JACK output unavailable, using rtmidi's: %s", exc)
        elif timed:
            raise PortUnavailableError(f"frame-accurate output is for JACK only, not {api}")
    return open_virtual_output(name, api=api) if virtual else connect_output(name, api=api)


def _open_timed_jack(name: str, *, virtual: bool) -> OutputPort:
    from midi_io.jack_timed import TimedJackOutput

    if virtual:
        port = TimedJackOutput(name)
        logger.info("opened frame-accurate JACK output %r", port.full_name)
        return port
    names = list_ports("jack").outputs
    destination = names[find_port(names, name)]
    port = TimedJackOutput("out", client_name="perfrnn")
    try:
        port.connect(destination)
    except PortUnavailableError:
        port.close()
        raise
    logger.info("connected frame-accurate JACK output to %r", destination)
    return port


def open_input(
    name: str,
    callback: Callable[[mido.Message, float], None],
    *,
    virtual: bool = False,
    api: str | None = None,
    now: Callable[[], float] = time.monotonic,
) -> RtMidiInput:
    """Listen to the output port ``name`` (a keyboard; exact name or unique substring), or create a virtual
    input called ``name`` that others send to. ``callback(msg, time_s)`` runs on the input's thread with each
    message and its ``now()`` time; bytes mido cannot parse are skipped; SysEx, clock and active sensing are
    ignored.

    Raises:
        PortUnavailableError: no such port, a virtual port on Windows, or the API fails.
    """
    api = resolve_api(api)
    if virtual and api == "winmm":
        raise PortUnavailableError(LOOPMIDI_HINT)
    rtmidi = _rtmidi()
    try:
        client = name if virtual else "perfrnn"
        midi_in = rtmidi.MidiIn(rtapi=_api_const(rtmidi, api), name=client, queue_size_limit=4096)
    except rtmidi.RtMidiError as exc:
        raise PortUnavailableError(f"cannot open a {api} MIDI client: {exc}") from exc
    try:
        if virtual:
            midi_in.open_virtual_port(name)
            full_name = name
        else:
            ports = midi_in.get_ports()
            index = find_port(ports, name)
            midi_in.open_port(index, "in")
            full_name = ports[index]
    except (rtmidi.RtMidiError, PortUnavailableError) as exc:
        midi_in.delete()
        raise PortUnavailableError(f"cannot open {api} input {name!r}: {exc}") from exc
    logger.info("listening on %s input %r", api, full_name)
    return RtMidiInput(midi_in, full_name, api, callback, now)


def _api_const(rtmidi: ModuleType, api: str) -> int:
    return int(getattr(rtmidi, _RTMIDI_API[api]))


def _rtmidi() -> ModuleType:
    try:
        return importlib.import_module("rtmidi")
    except ImportError as exc:
        raise PortUnavailableError("MIDI ports need python-rtmidi: pip install python-rtmidi") from exc
