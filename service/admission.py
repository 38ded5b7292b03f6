"""Admission: work is taken up to a limit, across every music model, and the rest is refused (429) at once, which
keeps an engine from ever being the one to say no."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import Overloaded


class Slots:
    """A non-blocking admission counter: ``take`` raises Overloaded when all ``limit`` slots are in use."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what = limit, what
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def acquire(self) -> None:
        with self._lock:
            if self._used >= self.limit:
                raise Overloaded(f"all {self.limit} {self.what} slots are in use: try again later")
            self._used += 1

    def release(self) -> None:
        with self._lock:
            self._used -= 1

    @contextmanager
    def take(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
