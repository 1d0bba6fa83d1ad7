"""Storage health: tell an outage (disk full, I/O error) from a bad job, and pause for it.

When the disk or the database cannot take a write, retrying each job on its own
would burn through its attempts and mark good audio failed. Instead the thread
that hit the fault reports it here; every pipeline thread then waits before its
next write, one thread at a time probes again after an exponential backoff
(tenacity's `wait_exponential`), and the first write that succeeds resumes all.
DuckDB itself recovers from a failed commit once space is back (checked on a
full tmpfs), so nothing has to be reopened.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import duckdb
from tenacity import RetryCallState, wait_exponential

from scribe.errors import ScribeError

T = TypeVar("T")
log = logging.getLogger("scribe.health")

_OUTAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM}


def is_storage_fault(exc: BaseException) -> bool:
    """True for errors that say the disk or database cannot write now (not a bad job).

    DuckDB reports a failed commit or write as an `OperationalError` subclass
    (`TransactionException: Failed to commit: ... No space left on device`,
    `IOException`); files report an OSError with an outage errno.
    """
    if isinstance(exc, duckdb.OperationalError):
        return True
    if isinstance(exc, OSError) and exc.errno in _OUTAGE_ERRNOS:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_storage_fault(cause)


@dataclass(frozen=True)
class HealthStats:
    storage_ok: bool
    storage_faults: int
    """Writes that failed because of the disk or database, since start."""
    storage_down_s: float
    """Seconds the current outage has lasted (0 when writes succeed)."""
    storage_error: str | None
    """The latest outage's error, one line (kept after recovery)."""


class StorageHealth:
    """A gate every writing thread passes before a write. Thread-safe."""

    def __init__(self, *, base_seconds: float = 0.5, max_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wait = wait_exponential(multiplier=base_seconds, max=max_seconds)
        self._clock = clock
        self._cond = threading.Condition()
        self._down_since: float | None = None
        self._streak = 0
        self._probe_at = 0.0
        self._probing = False
        self._closed = False
        self._faults = 0
        self._last_error: str | None = None

    def wait_turn(self) -> bool:
        """Block while storage is down; return True when this thread may write (it may be
        the one probing), False once `close()` was called."""
        with self._cond:
            while not self._closed and self._down_since is not None:
                now = self._clock()
                if not self._probing and now >= self._probe_at:
                    self._probing = True
                    return True
                delay = self._probe_at - now if not self._probing else 1.0
                self._cond.wait(max(0.02, min(delay, 1.0)))
            return not self._closed

    def failed(self, exc: BaseException) -> float:
        """A write failed for a storage reason: pause everyone; returns the backoff in seconds.

        Logged once per outage (at its start), not once per job."""
        with self._cond:
            first = self._down_since is None
            if first:
                self._down_since, self._streak = self._clock(), 0
            self._streak += 1
            self._faults += 1
            self._last_error = _one_line(exc)
            state = RetryCallState(None, None, (), {})
            state.attempt_number = self._streak
            delay = float(self._wait(state))
            self._probe_at = self._clock() + delay
            self._probing = False
            self._cond.notify_all()
        if first:
            log.error("storage cannot write (%s); pausing the queue, retrying every %.1f-%.0f s",
                      self._last_error, delay, self._wait.max)
        return delay

    def succeeded(self) -> None:
        """A write went through: resume everyone (logged once when an outage ends)."""
        with self._cond:
            if self._down_since is None and not self._probing:
                return
            lasted = self._clock() - self._down_since if self._down_since is not None else 0.0
            self._down_since, self._probing, self._streak = None, False, 0
            self._cond.notify_all()
        log.warning("storage writes again after %.1f s; the queue resumes", lasted)

    def write_through_outages(self, write: Callable[[], T], *, stopped: str) -> T:
        """Run `write`; on a storage fault pause with everyone, back off and write again.
        Other errors propagate. Raises ScribeError(`stopped`) if closed during an outage."""
        while self.wait_turn():
            try:
                result = write()
            except Exception as exc:
                if not is_storage_fault(exc):
                    self.release_probe()
                    raise
                self.failed(exc)
                continue
            self.succeeded()
            return result
        raise ScribeError(stopped)

    def release_probe(self) -> None:
        """A probing thread ended without writing (e.g. nothing left to do)."""
        with self._cond:
            self._probing = False
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting thread for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def ok(self) -> bool:
        with self._cond:
            return self._down_since is None

    def stats(self) -> HealthStats:
        with self._cond:
            down = self._clock() - self._down_since if self._down_since is not None else 0.0
            return HealthStats(self._down_since is None, self._faults, down, self._last_error)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
