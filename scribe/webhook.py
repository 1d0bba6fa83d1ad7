"""Webhook: a JSON event POSTed to SCRIBE_WEBHOOK_URL when a session is done and when its
final pass is stored.

Events go through an outbox table (`webhook_events`): the `scribe-webhook` thread stores each
event before sending it, so one not yet delivered when the process stops is resent by the next
start. Pipeline and final-pass listeners only put the session id on an in-memory queue, so a
slow or dead receiver never holds up transcription. A failed send (connection error, timeout,
any status other than 2xx) is retried with exponential backoff and full jitter, up to
SCRIBE_WEBHOOK_MAX_ATTEMPTS; the attempt count and the next due time live in the row, which is
why the backoff is computed here rather than by a retry loop that would forget it on restart.

The URL is never logged: receivers often carry a secret in it.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from scribe.storage import Storage

log = logging.getLogger(__name__)

SESSION_DONE = "session.done"
FINAL_PASS_STORED = "session.final_pass"
SEND_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 3600.0
USER_AGENT = "scribe-webhook/1"

Sender = Callable[[str, dict[str, Any]], None]
"""Sends one event (url, JSON body); raises on any failure."""


def http_sender(timeout: float = SEND_TIMEOUT_S) -> Sender:
    """POST with httpx2 (redirects not followed: a redirect is a misconfigured receiver)."""
    import httpx2

    # httpx2 logs every request's full URL at INFO: the secret in a webhook URL would reach the log.
    logging.getLogger("httpx2").setLevel(max(logging.WARNING, logging.getLogger("httpx2").level))
    client = httpx2.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def send(url: str, body: dict[str, Any]) -> None:
        response = client.post(url, json=body)
        if not 200 <= response.status_code < 300:
            raise WebhookSendError(f"receiver answered HTTP {response.status_code}")
    return send


class WebhookSendError(Exception):
    """The receiver did not accept an event."""


def describe_url(url: str) -> str:
    """Scheme and host only, for log lines (paths and queries often hold secrets)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def session_event(storage: Storage, event: str, session_id: str, links_base: str) -> dict[str, Any]:
    """The JSON body for `event` about a session: id, title, owner, visibility, duration, status,
    counts, links. No transcript text: the links answer only callers the access rule lets read
    the session (scribe.access), so the receiver fetches text with its own token."""
    from scribe.accounts import owner_label

    session = storage.get_session(session_id)
    api = f"{links_base.rstrip('/')}/api/sessions/{session.id}"
    return {
        "event": event,
        "session": {"id": session.id, "title": session.title, "status": session.status,
                    "source": session.source, "backend": session.backend, "model": session.model,
                    "duration_seconds": session.duration_ms / 1000, "created_at": session.created_at,
                    "ended_at": session.ended_at, "owner": owner_label(storage, session),
                    "visibility": session.visibility},
        "chunks": storage.chunk_counts(session.id),
        "segments": storage.transcript_counts(session.id),
        "links": {"session": api, "transcript": f"{api}/transcript?format=txt",
                  "app": f"{links_base.rstrip('/')}/sessions?session={session.id}"},
    }


class Webhook:
    """The process's webhook sender: listeners queue, one thread stores and delivers."""

    def __init__(self, storage: Storage, url: str, *, links_base: str, retry_seconds: float = 5.0,
                 max_attempts: int = 12, sender: Sender | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self._url = url
        self._links_base = links_base
        self._retry_seconds = retry_seconds
        self._max_attempts = max_attempts
        self._send = sender or http_sender()
        self._clock = clock
        self._incoming: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._watched: set[int] = set()

    # -- wiring ---------------------------------------------------------------
    def watch(self, runtime) -> None:
        """Listen to a Runtime's pipeline and final pass (once; only runtimes on this database)."""
        if runtime.storage is not self.storage or id(runtime) in self._watched:
            return
        self._watched.add(id(runtime))
        runtime.pipeline.add_listener(self.on_pipeline_event)
        if runtime.final_pass is not None:
            runtime.final_pass.add_listener(self.on_final_pass)

    def on_pipeline_event(self, event: str, fields: dict) -> None:
        """Pipeline listener (runs on a worker or writer thread): only queues."""
        if event == "session_drained":
            self._incoming.put((SESSION_DONE, fields["session_id"]))
            self._wake.set()

    def on_final_pass(self, session_id: str) -> None:
        """Final-pass listener (runs on `scribe-final-pass`): only queues."""
        self._incoming.put((FINAL_PASS_STORED, session_id))
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> "Webhook":
        """Start the sender; events left unsent by a previous process are due at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scribe-webhook", daemon=True)
            self._thread.start()
            log.info("webhook on: events go to %s", describe_url(self._url))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._incoming.put(None)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the sender thread ------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                if not self._store_incoming():
                    return
                self._deliver_due()
                pause = self._seconds_to_next()
            except Exception:  # e.g. the database briefly unavailable: keep the sender alive
                log.exception("webhook sender error; trying again shortly")
                pause = 5.0
            self._wake.wait(pause)
            self._wake.clear()

    def _store_incoming(self) -> bool:
        """Move queued notices into the outbox; False once asked to stop."""
        while True:
            try:
                item = self._incoming.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                return False
            event, session_id = item
            try:
                body = session_event(self.storage, event, session_id, self._links_base)
                self.storage.add_webhook_event(event, session_id, body, now=self._clock())
            except Exception:  # e.g. the session was deleted meanwhile; nothing to announce
                log.exception("session=%s webhook event %s not stored", session_id, event)

    def _deliver_due(self) -> None:
        for row in self.storage.due_webhook_events(now=self._clock()):
            if not self._incoming.empty():
                return  # store new notices first; what is due stays due
            self._attempt(row)

    def _attempt(self, row: dict[str, Any]) -> None:
        try:
            self._send(self._url, row["payload"])
        except Exception as exc:  # any failure is retried; the message never holds the URL
            self._failed(row, f"{type(exc).__name__}: {_without_url(str(exc), self._url)}")
            return
        self.storage.settle_webhook_event(row["id"], now=self._clock())
        log.info("session=%s webhook %s delivered", row["session_id"], row["event"])

    def _failed(self, row: dict[str, Any], error: str) -> None:
        attempts = row["attempts"] + 1
        now = self._clock()
        if attempts >= self._max_attempts:
            self.storage.settle_webhook_event(row["id"], now=now, error=error)
            log.error("session=%s webhook %s given up after %d attempts: %s", row["session_id"],
                      row["event"], attempts, error)
            return
        delay = backoff_seconds(attempts, self._retry_seconds)
        self.storage.settle_webhook_event(row["id"], now=now, error=error, retry_at=now + delay)
        log.warning("session=%s webhook %s attempt %d failed (%s); next in %.1f s", row["session_id"],
                    row["event"], attempts, error, delay)

    def _seconds_to_next(self) -> float:
        due = self.storage.next_webhook_attempt()
        if due is None:
            return 60.0
        return min(60.0, max(0.0, due - self._clock()))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once nothing is queued and nothing unsent is due (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            due = self.storage.next_webhook_attempt()
            if self._incoming.empty() and (due is None or due > self._clock()):
                return True
            time.sleep(0.05)
        return False


def backoff_seconds(attempts: int, base: float, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base/2, base * 2^(attempts-1)], capped."""
    ceiling = min(MAX_BACKOFF_S, base * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(min(base / 2, ceiling), ceiling)


def _without_url(message: str, url: str) -> str:
    return message.replace(url, describe_url(url))
