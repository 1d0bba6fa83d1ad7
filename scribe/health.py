"""Storage health: tell an outage (disk full, I/O error) from a bad job, and pause for it.

When the disk or the database cannot take a write, retrying each job on its own
would burn through its attempts and mark good audio failed. Instead the thread
that hit the fault reports it here; every pipeline thread then waits before its
next write, one thread at a time probes again after an exponential backoff
(tenacity's `wait_exponential`). The outage ends when the write that failed goes through,
or when another thread's write succeeds *and* a probe of the failed kind does too: a small
database write can succeed on a disk that has no room for a chunk's audio file, so its
success alone proves nothing (the probe writes and fsyncs a file of the failed write's size).
A caller that must not wait for ever (the CLI) gives `write_through_outages` a bound.
DuckDB itself recovers from a failed commit once space is back (checked on a
full tmpfs), so nothing has to be reopened.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import duckdb
from tenacity import RetryCallState, wait_exponential

from scribe.errors import ScribeError, StorageOutageError

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


PROBE_BYTES = 256 * 1024
"""The probe's size when the failed write's size is not known (a database commit)."""


def space_probe(folder: Path) -> Callable[[int], None]:
    """A probe that writes `size` bytes into `folder`, fsyncs and removes them: a real write
    of the size that failed (a tmpfs or a quota refuses it exactly as it refused the chunk)."""
    def probe(size: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f".storage-probe-{uuid.uuid4().hex}.tmp"
        try:
            with open(path, "wb") as handle:
                block = bytes(1 << 16)
                for start in range(0, size, len(block)):
                    handle.write(block[:size - start])
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            path.unlink(missing_ok=True)
    return probe


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
                 clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[int], None] | None = None) -> None:
        """`probe(size)`: a write like the one that failed (see `space_probe`); without one,
        any successful write ends an outage."""
        self._wait = wait_exponential(multiplier=base_seconds, max=max_seconds)
        self._probe = probe
        self._probe_bytes = PROBE_BYTES
        self._clock = clock
        self._cond = threading.Condition()
        self._down_since: float | None = None
        self._streak = 0
        self._probe_at = 0.0
        self._probing = False
        self._closed = False
        self._faults = 0
        self._last_error: str | None = None

    def wait_turn(self, give_up_after: float | None = None) -> bool:
        """Block while storage is down; return True when this thread may write (it may be
        the one probing), False once `close()` was called. With `give_up_after`, raise
        StorageOutageError once the outage has lasted that many seconds."""
        with self._cond:
            while not self._closed and self._down_since is not None:
                now = self._clock()
                if give_up_after is not None and now - self._down_since >= give_up_after:
                    raise StorageOutageError(
                        f"storage has refused writes for {now - self._down_since:.0f} s "
                        f"({self._last_error})", seconds=now - self._down_since)
                if not self._probing and now >= self._probe_at:
                    self._probing = True
                    return True
                delay = self._probe_at - now if not self._probing else 1.0
                self._cond.wait(max(0.02, min(delay, 1.0)))
            return not self._closed

    def failed(self, exc: BaseException, size: int | None = None) -> float:
        """A write (of `size` bytes, if known) failed for a storage reason: pause everyone;
        returns the backoff in seconds. Logged once per outage (at its start), not once per job."""
        with self._cond:
            first = self._down_since is None
            if first:
                self._down_since, self._streak = self._clock(), 0
                self._probe_bytes = PROBE_BYTES
            if size:
                self._probe_bytes = max(self._probe_bytes, size)
            self._streak += 1
            self._faults += 1
            self._last_error = _one_line(exc)
            state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # the wait reads only attempt_number
            state.attempt_number = self._streak
            delay = float(self._wait(state))
            self._probe_at = self._clock() + delay
            self._probing = False
            self._cond.notify_all()
        if first:
            log.error("storage cannot write (%s); pausing the queue, retrying every %.1f-%.0f s",
                      self._last_error, delay, self._wait.max)
        return delay

    def succeeded(self, *, proof: bool = False) -> None:
        """A write went through: resume everyone (logged once when an outage ends). Unless
        it was the failed write itself (`proof`), the probe must pass too."""
        with self._cond:
            if self._down_since is None and not self._probing:
                return
            size = self._probe_bytes
        if not proof and self._down_since is not None and not self._probe_passes(size):
            return
        with self._cond:
            if self._down_since is None and not self._probing:
                return
            lasted = self._clock() - self._down_since if self._down_since is not None else 0.0
            self._down_since, self._probing, self._streak = None, False, 0
            self._cond.notify_all()
        log.warning("storage writes again after %.1f s; the queue resumes", lasted)

    def _probe_passes(self, size: int) -> bool:
        if self._probe is None:
            return True
        try:
            self._probe(size)
        except Exception as exc:
            if not is_storage_fault(exc):
                raise
            self.failed(exc)  # still down: the backoff grows, nothing is logged again
            return False
        return True

    def write_through_outages(self, write: Callable[[], T], *, stopped: str, size: int | None = None,
                              give_up_after: float | None = None) -> T:
        """Run `write` (of `size` bytes, if known); on a storage fault pause with everyone,
        back off and write again. Other errors propagate. Raises ScribeError(`stopped`) if
        closed during an outage, StorageOutageError once an outage lasts `give_up_after` s."""
        told = False
        while self.wait_turn(give_up_after):
            try:
                result = write()
            except Exception as exc:
                if not is_storage_fault(exc):
                    self.release_probe()
                    raise
                self.failed(exc, size)
                if give_up_after is not None and not told:
                    told = True
                    log.warning("waiting up to %.0f s for storage to take writes again "
                                "(SCRIBE_STORAGE_WAIT_SECONDS), then stopping", give_up_after)
                continue
            self.succeeded(proof=True)
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
