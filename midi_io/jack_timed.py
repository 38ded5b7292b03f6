"""Frame-accurate JACK MIDI: ``TimedJackOutput`` writes each message at the frame of its due time, and
``TimedJackInput`` stamps each received message with the time of its frame (what a DAW records).

rtmidi's JACK output writes every message at the first frame of the next process cycle, so a message lands up to
a whole period (1.3 ms at 64 frames / 48 kHz) after it was sent, plus however late the sending thread woke. Here
the player hands messages over ``lead_s`` ahead of their due time with the time attached, and a process callback
in C (``jack_timed.c``, no Python and no GIL on JACK's thread) writes each at its frame.

The C part is compiled on first use with the system's C compiler against libjack's runtime library (no JACK
headers needed; ``midi_io.native``) and cached under ``$PERFRNN_CACHE`` (default ``~/.cache/perfrnn``). Without a
compiler or libjack, opening a port raises ``PortUnavailableError`` and ``midi_io.ports.open_output`` falls back
to rtmidi. Times given and returned are on ``time.monotonic``'s clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Self

import mido

from midi_io import native
from midi_io.errors import PortUnavailableError

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("jack_timed.c")
MAX_BYTES = 52  # JT_MAX_BYTES in the C source
DEFAULT_LEAD_S = 0.01  # hand-over ahead of the due time: a cycle (1.3 ms) plus the sending thread's worst wake-up
_STATUS_SERVER_FAILED = 0x10  # JackServerFailed: no server to connect to
OFFSET_REFRESH_S = 0.5  # JACK's clock and time.monotonic may drift apart: re-measure their offset this often
CLOSE_DRAIN_S = 0.25  # at close, wait this long at most for what was handed over to be written


def _library() -> ctypes.CDLL:
    """The compiled C part, built on first use and cached by the hash of its source and command; a failure is
    remembered for the process too (every port opened after it falls back at once, without another build).

    Raises:
        PortUnavailableError: no libjack, no C compiler, or the build failed (the message says which).
    """
    built = _build()
    if isinstance(built, str):
        raise PortUnavailableError(built)
    return built


@cache
def _build() -> ctypes.CDLL | str:
    """``_library``'s work: the loaded library, or why there is none."""
    try:
        return _compile_and_load()
    except PortUnavailableError as exc:
        return str(exc)


def _compile_and_load() -> ctypes.CDLL:
    libjack = ctypes.util.find_library("jack")
    if libjack is None:
        raise PortUnavailableError("frame-accurate JACK output needs libjack (apt-get install libjack-jackd2-0)")
    try:
        target = native.build(SOURCE, ["-O2", "-std=c11", "-shared", "-fPIC"], [f"-l:{libjack}", "-lpthread"])
    except native.NativeBuildError as exc:
        raise PortUnavailableError(f"building the frame-accurate JACK output failed: {exc}") from None
    lib = ctypes.CDLL(str(target))
    u8p, u64p, vp = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p
    signatures = {
        "jt_open": (vp, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]),
        "jt_port_name": (ctypes.c_char_p, [vp]),
        "jt_connect": (ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_char_p]),
        "jt_time": (ctypes.c_uint64, []),
        "jt_send": (ctypes.c_int, [vp, u8p, ctypes.c_uint32, ctypes.c_uint64]),
        "jt_flush": (ctypes.c_int, [vp]),
        "jt_receive": (ctypes.c_int, [vp, u8p, u64p]),
        "jt_stats": (None, [vp, u64p]),
        "jt_close": (None, [vp]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def available() -> bool:
    """True when the C part builds and loads here (a JACK server need not be running)."""
    try:
        _library()
    except PortUnavailableError:
        return False
    return True


@dataclass(frozen=True)
class TimedStats:
    written: int  # messages written to JACK (output) or received (input)
    late: int  # output: written in a cycle after the one holding their due time
    max_late_ms: float  # output: the largest such lateness
    dropped: int  # output: no room left to hold them; input: not read in time
    queued: int  # output: handed over, not yet written


class _TimedPort:
    def __init__(self, client_name: str, port_name: str, *, output: bool) -> None:
        self._lib = _library()
        status = ctypes.c_int(0)
        handle = self._lib.jt_open(client_name.encode(), port_name.encode(), int(output), ctypes.byref(status))
        if not handle:
            why = ("no JACK server is running" if status.value > 0 and status.value & _STATUS_SERVER_FAILED
                   else f"JACK status {status.value:#x}")
            raise PortUnavailableError(f"cannot open JACK {'output' if output else 'input'} {port_name!r}: {why}")
        self._h: int | None = handle
        self.name = port_name
        self.full_name: str = self._lib.jt_port_name(handle).decode()
        self.api = "jack"
        self._lock = threading.Lock()
        self._offset_us, self._offset_at = self._clock_offset_us(), time.monotonic()

    def _clock_offset_us(self, probes: int = 9) -> float:
        """JACK's clock minus time.monotonic, microseconds: the median of probes bracketed by monotonic reads.
        JACK's clock is not always the one time.monotonic reads (here it was CLOCK_MONOTONIC_RAW, 0.26 s apart
        after 6 hours, drifting about 11 µs per second), so the offset is measured again every
        ``OFFSET_REFRESH_S``."""
        samples = []
        for _ in range(probes):
            a = time.monotonic_ns()
            j = self._lib.jt_time()
            b = time.monotonic_ns()
            samples.append(j - (a + b) / 2000)
        return sorted(samples)[probes // 2]

    def _offset(self) -> float:
        if time.monotonic() - self._offset_at > OFFSET_REFRESH_S:
            self._offset_us, self._offset_at = self._clock_offset_us(), time.monotonic()
        return self._offset_us

    def to_jack_us(self, monotonic_s: float) -> int:
        return max(1, round(monotonic_s * 1e6 + self._offset()))

    def from_jack_us(self, jack_us: int) -> float:
        return (jack_us - self._offset()) / 1e6

    def _handle(self) -> int:
        if self._h is None:
            raise PortUnavailableError(f"JACK port {self.name!r} is closed")
        return self._h

    def _counters(self) -> list[int]:
        out = (ctypes.c_uint64 * 6)()
        with self._lock:
            self._lib.jt_stats(self._handle(), out)
        return list(out)

    def stats(self) -> TimedStats:
        c = self._counters()
        return TimedStats(c[0], c[1], c[2] / 1e3, c[3], c[4])

    @property
    def server_gone(self) -> bool:
        return bool(self._counters()[5])

    def close(self) -> None:
        with self._lock:
            if self._h is not None:
                self._lib.jt_close(self._h)
                self._h = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TimedJackOutput(_TimedPort):
    """A JACK MIDI output port (client and port called ``name``) that places messages at their due frames: an
    ``OutputPort`` with ``send`` (at once) and ``send_at`` (at a time on the monotonic clock). ``Player`` hands
    messages to it ``lead_s`` early. ``drop_pending`` forgets what was handed over and not yet written and
    releases every note the port left sounding. ``connect`` wires it to another client's input port."""

    def __init__(self, name: str, *, lead_s: float = DEFAULT_LEAD_S, client_name: str | None = None) -> None:
        if not 0 < lead_s <= 1.0:
            raise ValueError(f"lead_s must be in (0, 1] seconds, got {lead_s}")
        super().__init__(client_name or name, name, output=True)
        self.lead_s = lead_s

    def send(self, msg: mido.Message) -> None:
        self._push(msg, 0)

    def send_at(self, msg: mido.Message, due_s: float) -> None:
        """Write ``msg`` at the frame of ``due_s`` (time.monotonic clock); at once when that is already past."""
        self._push(msg, self.to_jack_us(due_s))

    def _push(self, msg: mido.Message, due_us: int) -> None:
        data = bytes(msg.bytes())
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        with self._lock:  # not while another thread closes the port: the handle would be freed
            rc = self._lib.jt_send(self._handle(), buf, len(data), due_us)
        if rc == 1:
            return
        if rc == -2:
            raise ValueError(f"message of {len(data)} bytes: at most {MAX_BYTES} fit a timed JACK port")
        if rc == -1:
            raise PortUnavailableError(f"JACK output {self.name!r} vanished: the server shut down")
        raise PortUnavailableError(f"JACK output {self.name!r} is not being drained (its queue is full)")

    def drop_pending(self) -> None:
        with self._lock:
            gone = self._h is not None and self._lib.jt_flush(self._h) == -1
        if gone:
            raise PortUnavailableError(f"JACK output {self.name!r} vanished: the server shut down")

    def connect(self, destination: str) -> None:
        if self._lib.jt_connect(self._handle(), self.full_name.encode(), destination.encode()) != 0:
            raise PortUnavailableError(f"cannot connect {self.full_name!r} to {destination!r}")

    def close(self) -> None:
        """Wait (at most ``CLOSE_DRAIN_S``) until what was handed over is written, then close."""
        if self._h is not None and not self.server_gone:
            deadline = time.monotonic() + CLOSE_DRAIN_S
            while self.stats().queued and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(0.005)  # the cycle that wrote the last message reaches its readers
        super().close()


class TimedJackInput(_TimedPort):
    """A JACK MIDI input port that stamps each message with the time of its frame (monotonic clock): what a DAW
    records. ``poll`` returns what arrived since the last call."""

    def __init__(self, name: str | None = None, *, source: str | None = None) -> None:
        name = name or f"rx-{uuid.uuid4().hex[:6]}"
        super().__init__(name, "in", output=False)
        self._data = (ctypes.c_uint8 * MAX_BYTES)()
        self._time = ctypes.c_uint64(0)
        if source is not None and self._lib.jt_connect(self._handle(), source.encode(),
                                                       self.full_name.encode()) != 0:
            self.close()
            raise PortUnavailableError(f"cannot connect {source!r} to {name}:in")

    def poll(self) -> list[tuple[float, bytes]]:
        got = []
        with self._lock:
            while (n := self._lib.jt_receive(self._handle(), self._data, ctypes.byref(self._time))) > 0:
                got.append((self._time.value, bytes(self._data[:n])))
        return [(self.from_jack_us(t), data) for t, data in got]
