"""Waiting in tests for something another thread does: bounded, polled, never a bare sleep."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], object], timeout: float = 30.0, poll: float = 0.02) -> bool:
    """True as soon as `condition()` is true; after `timeout` seconds, its last answer.
    Use as `assert eventually(...)`, so the failure shows the condition's line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.2) -> T:
    """`predicate()`'s first true answer; after `timeout` seconds, an AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
