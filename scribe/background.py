"""One pattern for background work that follows the pipeline: a named daemon thread serving a
queue of requests, stopped by a sentinel, that can wait for the live queue to be quiet first.

The final pass and the speaker labeler are built on it; their listeners (called on pipeline
worker threads) only queue requests, so they never block transcription.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Generic, TypeVar

R = TypeVar("R")


class RequestThread(Generic[R]):
    """Subclasses set `thread_name` and implement `handle(request)`, which runs on the thread
    and must catch its own errors (an escaping one is logged by threading, the thread ends)."""

    thread_name = "scribe-background"

    def __init__(self, *, is_idle: Callable[[], bool] = lambda: True, poll_seconds: float = 0.5) -> None:
        self._is_idle = is_idle
        self._poll = poll_seconds
        self._requests: queue.Queue[R | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def put(self, request: R) -> None:
        """Queue a request (any thread; never blocks)."""
        self._requests.put(request)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Block until every queued request is handled (tests, CLI); timeout 0 just asks."""
        deadline = time.monotonic() + timeout
        while self._requests.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._requests.unfinished_tasks == 0

    def handle(self, request: R) -> None:
        raise NotImplementedError

    def wait_for_quiet(self) -> bool:
        """Live chunks first: wait while the pipeline has work (False if stopping)."""
        while not self._is_idle():
            if self._stopping.wait(self._poll):
                return False
        return not self._stopping.is_set()

    def _loop(self) -> None:
        while (request := self._requests.get()) is not None:
            try:
                self.handle(request)
            finally:
                self._requests.task_done()
        self._requests.task_done()
