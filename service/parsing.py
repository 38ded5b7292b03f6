"""Uploaded primers are parsed in a worker process, under a time limit.

Parsing a MIDI file is pure Python: a 1 MB upload holds the interpreter lock for about two seconds, which in the
server's own process would make every live stream's replies wait behind it. In a worker process it costs the
server nothing but the (small) trimmed result, and a parse that runs past ``timeout_s`` is stopped by
terminating the worker (a fresh one is started for the next upload). The workers start on the first upload.
This module imports only ``midi_io``: it is what the worker imports.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass
from multiprocessing.pool import Pool

from midi_io.errors import MidiDecodeError
from midi_io.files import read_notes
from midi_io.notes import Note, trim_primer


@dataclass(frozen=True)
class ParseConfig:
    keep_s: float  # a primer keeps the notes that start in the file's last keep_s seconds...
    keep_notes: int  # ... and of those the last keep_notes
    timeout_s: float = 10.0  # past this the parse is stopped and the upload refused
    workers: int = 2


class ParseTimeout(MidiDecodeError):
    """The upload took longer than the time limit to parse (a 422, as any unreadable file)."""


def parse_primer(data: bytes, name: str, keep_s: float, keep_notes: int) -> list[Note]:
    """The trimmed pitched notes of a .mid (runs in the worker). Raises MidiDecodeError."""
    return trim_primer(read_notes(data, name=name), keep_s, keep_notes)


class PrimerParser:
    """A small pool of parsing processes (spawned, so no lock or thread of the server is inherited)."""

    def __init__(self, config: ParseConfig) -> None:
        self.config = config
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def parse(self, data: bytes, name: str) -> list[Note] | None:
        """The upload's primer notes, None if it has none. Raises MidiDecodeError (ParseTimeout included)."""
        c = self.config
        pending = self._get_pool().apply_async(parse_primer, (data, name, c.keep_s, c.keep_notes))
        try:
            notes = pending.get(timeout=c.timeout_s)
        except multiprocessing.TimeoutError:
            self._reset()
            raise ParseTimeout(f"{name}: not parsed within {c.timeout_s:g} s: the file is too complex") from None
        return notes or None

    def _get_pool(self) -> Pool:
        with self._lock:
            if self._pool is None:
                self._pool = multiprocessing.get_context("spawn").Pool(self.config.workers)
            return self._pool

    def _reset(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    def close(self) -> None:
        self._reset()
