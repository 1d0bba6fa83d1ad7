"""Waiting in tests for something another thread does: bounded, polled, never a bare sleep."""

from __future__ import annotations

import time
from typing import Callable


def eventually(condition: Callable[[], object], timeout: float = 30.0, poll: float = 0.02) -> bool:
    """True as soon as `condition()` is true; after `timeout` seconds, its last answer.
    Use as `assert eventually(...)`, so the failure shows the condition's line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())
