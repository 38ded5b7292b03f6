"""A JACK server on the dummy backend for real-time MIDI tests: reuse a running one, else start jackd; and
``JackReceiver``, a second JACK client that records what a port sends, on JACK's clock.

No sound hardware is needed: ``apt-get install --no-install-recommends jackd2`` provides jackd. The server
this module starts is stopped by ``JackServer.stop``; one that was already running is left alone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mido

PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


class JackUnavailable(Exception):
    """No JACK server can be used here (the message says why, for a skip reason)."""


@dataclass
class JackServer:
    process: subprocess.Popen[bytes] | None  # None: a server was already running
    log_path: Path | None = None
    command: str = "reused a running server"  # how it was started: jackd and its flags (no paths)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def rtmidi_has_jack() -> bool:
    try:
        import rtmidi
    except ImportError:
        return False
    return rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api()


def jack_running() -> bool:
    """True when an rtmidi JACK client can connect (libjack prints to stderr when it cannot)."""
    from midi_io.ports import jack_running as probe

    return probe()


def realtime_allowed() -> bool:
    """True when this user may run threads with real-time (SCHED_FIFO) priority, as JACK's server and clients do
    by default; probed in a child process, so this one's scheduling is untouched."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False).returncode == 0


def start_jack(*, rate: int = 48000, period: int = 64, timeout_s: float = 10.0,
               realtime: bool | None = None) -> JackServer:
    """A usable JACK server: the running one, or ``jackd -d dummy`` started here, with real-time priority when
    ``realtime`` (None: when ``realtime_allowed()``, as users run JACK), else ``--no-realtime``. Without
    real-time priority a busy machine delays JACK's cycles, and its clients then read the timing of a later
    cycle than the one they process, which misplaces frame-accurate MIDI by whole cycles.

    Raises:
        JackUnavailable: python-rtmidi lacks JACK, jackd is not installed, or it did not come up in time.
    """
    if not rtmidi_has_jack():
        raise JackUnavailable("python-rtmidi is missing or was built without JACK support")
    if jack_running():
        return JackServer(None)
    jackd = shutil.which("jackd")
    if jackd is None:
        raise JackUnavailable("jackd is not on PATH (apt-get install --no-install-recommends jackd2)")
    log_fd, log_name = tempfile.mkstemp(prefix="jackd-", suffix=".log")  # a file: a full pipe would stall jackd
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    # a long client timeout: on a loaded CI machine jackd would otherwise drop ("zombify") slow clients
    if realtime is None:
        realtime = realtime_allowed()
    priority = ["--realtime"] if realtime else ["--no-realtime"]
    cmd = [jackd, *priority, "-t", "5000", "-d", "dummy", "-r", str(rate), "-p", str(period)]
    process = subprocess.Popen(cmd, stdout=log_fd, stderr=log_fd, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509 - tests' threads are idle here
    os.close(log_fd)
    server = JackServer(process, Path(log_name), " ".join(["jackd", *cmd[1:]]))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise JackUnavailable(f"jackd exited with {process.returncode}: {_tail(server.log_path)}")
        if jack_running():
            return server
        time.sleep(0.1)
    server.stop()
    raise JackUnavailable(f"jackd did not accept clients within {timeout_s} s: {_tail(server.log_path)}")


def _die_with_parent() -> None:
    """In the child: on Linux, get SIGTERM when the test process dies, even by a crash that skips teardown."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path | None, chars: int = 500) -> str:
    return path.read_text(errors="replace")[-chars:] if path is not None else ""


class JackReceiver:
    """A second rtmidi JACK client listening to one port. It has no Python callback: rtmidi queues messages
    on JACK's thread without the GIL (a callback waiting for the GIL makes JACK drop events), and the test
    polls. ``received`` holds (time_s, message); time_s is JACK's clock since the first message, in seconds.
    """

    def __init__(self, source: str) -> None:
        import rtmidi

        self.received: list[tuple[float, mido.Message]] = []
        self._clock_s = 0.0
        self._in = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=f"rx-{uuid.uuid4().hex[:6]}", queue_size_limit=4096)
        ports = self._in.get_ports()
        index = next(i for i, name in enumerate(ports) if name.endswith(":" + source))
        self._in.open_port(index, "in")

    def poll(self) -> int:
        """Move queued messages into ``received``; returns how many there are."""
        while (event := self._in.get_message()) is not None:
            data, delta_s = event
            self._clock_s += delta_s
            self.received.append((self._clock_s, mido.Message.from_bytes(data)))
        return len(self.received)

    def handshake(self, out: Any, timeout_s: float = 5.0) -> None:
        """Probe through ``out`` until messages arrive (a JACK connection takes a cycle or more), then forget them."""
        probe = mido.Message("control_change", control=119, value=0)
        deadline = time.monotonic() + timeout_s
        while not self.poll():
            if time.monotonic() >= deadline:
                raise TimeoutError("the JACK connection never carried a message")
            out.send(probe)
            time.sleep(0.01)
        time.sleep(0.05)
        self.poll()
        self.received.clear()

    def messages(self) -> list[mido.Message]:
        self.poll()
        return [m for _, m in self.received]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.poll() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        self._in.close_port()
        self._in.delete()
