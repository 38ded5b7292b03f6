"""Waiting for a condition in tests of threaded code, with a bound instead of a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], object], timeout_s: float = 20.0, poll_s: float = 0.005) -> bool:
    """Poll ``cond`` until it is true (-> True) or ``timeout_s`` has passed (-> False)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
