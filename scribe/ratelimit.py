"""A process-wide requests-per-window limit for a metered backend (pyrate-limiter).

The pipeline calls the limit as its `before_call` hook, so every backend call,
retries included, takes a slot; worker threads block in it until a slot frees.
"""

from __future__ import annotations

import logging
import time

from pyrate_limiter import Limiter, Rate

log = logging.getLogger("scribe.ratelimit")


class RateLimit:
    """At most `limit` calls in any `per_seconds` window, as the *server* counts them.

    The limiter counts a call when a worker takes a slot; the request reaches the
    server a little later (audio encoding, connection set-up, a busy CPU). If the
    first call of a window arrives late and the next window's first arrives on
    time, the server sees more than `limit` in one window. So the slots are
    spaced over `per_seconds + margin_seconds` (a sliding-window log): arrival
    delays up to the margin cannot push the server's count over `limit`.
    """

    def __init__(self, limit: int, *, per_seconds: float = 60.0, margin_seconds: float = 1.0,
                 name: str = "requests") -> None:
        if limit < 1 or per_seconds <= 0 or margin_seconds < 0:
            raise ValueError("a rate limit needs limit >= 1, a positive window and a margin >= 0")
        self.limit, self.per_seconds, self.name = limit, per_seconds, name
        self._limiter = Limiter(Rate(limit, int((per_seconds + margin_seconds) * 1000)))

    @property
    def per_minute(self) -> float:
        return self.limit * 60.0 / self.per_seconds

    def __call__(self) -> None:
        """Block (on the calling worker thread) until a call is allowed."""
        started = time.monotonic()
        self._limiter.try_acquire(self.name, blocking=True)
        waited = time.monotonic() - started
        if waited > 1.0:
            log.info("%s rate limit (%d per %g s): waited %.1f s", self.name, self.limit,
                     self.per_seconds, waited)
