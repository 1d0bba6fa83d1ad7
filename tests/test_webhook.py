"""The webhook against a real local HTTP receiver: resent until accepted, kept across a restart,
never holding up transcription, given up after its attempts, and end to end from a real app."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import numpy as np
import pytest
from audio_files import encode
from scribe_app import ScribeApp, free_port
from waiting import wait_until

from scribe.chunking import parse_policy
from scribe.config import Settings
from scribe.final_pass import FinalPass
from scribe.ingest import ingest_file, wait_for_session
from scribe.runtime import Runtime
from scribe.storage import Storage
from scribe.webhook import FINAL_PASS_STORED, SESSION_DONE, Webhook, backoff_seconds

SECRET_PATH = "/hooks/s3cr3t-path-token"


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first `fail_first` calls."""

    def __init__(self, fail_first: int = 0, *, hang_first: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail_first = fail_first
        self.release = threading.Event()
        if not hang_first:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.release.wait(60)
                receiver.calls.append({"path": self.path, "body": body})
                status = 500 if len(receiver.calls) <= receiver.fail_first else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def accepted(self) -> list[dict]:
        return [c["body"] for c in self.calls[self.fail_first:]]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]
    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def tone_file(tmp_path):
    def make(name: str, seconds: float) -> Path:
        t = np.arange(int(seconds * 16_000)) / 16_000
        return encode((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), tmp_path / name)
    return make


def _runtime(data: Path) -> Runtime:
    settings = Settings.from_env({}, data_dir=data, backend="stub", skip_silence=False)
    return Runtime.build(settings)


def _transcribe(rt: Runtime, path: Path) -> str:
    result = ingest_file(path, storage=rt.storage, pipeline=rt.pipeline, policy=parse_policy("fixed:4"))
    wait_for_session(rt.storage, result.session.id, timeout=30)
    return result.session.id


def _webhook(storage: Storage, url: str, **kwargs) -> Webhook:
    return Webhook(storage, url, links_base="http://127.0.0.1:8501", retry_seconds=0.05, **kwargs)


def test_an_event_is_resent_until_the_receiver_accepts_it(tmp_path, receiver_factory, tone_file, caplog):
    receiver = receiver_factory(fail_first=2)
    rt = _runtime(tmp_path / "data")
    hook = _webhook(rt.storage, receiver.url)
    hook.watch(rt)
    hook.start()
    try:
        with caplog.at_level(logging.INFO, logger="scribe.webhook"):
            session_id = _transcribe(rt, tone_file("a.wav", 9.0))
            wait_until(lambda: receiver.accepted(), 15, "the event to be accepted")
            assert hook.wait_idle(10)
        [row] = rt.storage.list_webhook_events()
    finally:
        hook.stop()
        rt.close()
    assert len(receiver.calls) == 3 and all(c["path"] == SECRET_PATH for c in receiver.calls)
    assert receiver.calls[0]["body"] == receiver.calls[2]["body"]  # the same event each time
    body = receiver.accepted()[0]
    assert body["event"] == SESSION_DONE and body["session"]["id"] == session_id
    assert body["session"]["status"] == "done" and body["session"]["duration_seconds"] == pytest.approx(9.0)
    assert body["chunks"] == {"pending": 0, "processing": 0, "done": 3, "failed": 0}
    assert body["links"]["transcript"] == f"http://127.0.0.1:8501/api/sessions/{session_id}/transcript?format=txt"
    assert row["attempts"] == 3 and row["delivered_at"] is not None and row["last_error"] is None
    assert "s3cr3t" not in caplog.text and "attempt 2 failed" in caplog.text


def test_a_pending_event_survives_a_restart(tmp_path, receiver_factory, tone_file):
    data = tmp_path / "data"
    closed_port = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"  # nothing listens: connection refused
    rt = _runtime(data)
    hook = _webhook(rt.storage, closed_port)
    hook.watch(rt)
    hook.start()
    session_id = _transcribe(rt, tone_file("b.wav", 5.0))
    wait_until(lambda: any(r["attempts"] >= 1 for r in rt.storage.list_webhook_events()), 10, "an attempt")
    hook.stop()
    rt.close()

    receiver = receiver_factory()
    storage = Storage(data / "scribe.duckdb")
    [pending] = storage.list_webhook_events()
    assert pending["delivered_at"] is None and "ConnectError" in pending["last_error"]
    restarted = _webhook(storage, receiver.url).start()
    try:
        wait_until(lambda: receiver.accepted(), 15, "the stored event after the restart")
        assert restarted.wait_idle(10)
        [row] = storage.list_webhook_events()
    finally:
        restarted.stop()
        storage.close()
    assert [b["session"]["id"] for b in receiver.accepted()] == [session_id]
    assert row["delivered_at"] is not None


def test_a_hanging_receiver_never_holds_up_transcription(tmp_path, receiver_factory, tone_file):
    receiver = receiver_factory(hang_first=True)
    rt = _runtime(tmp_path / "data")
    hook = _webhook(rt.storage, receiver.url)
    hook.watch(rt)
    hook.start()
    try:
        first = _transcribe(rt, tone_file("c1.wav", 5.0))
        wait_until(rt.storage.list_webhook_events, 10, "the first event stored")
        second = _transcribe(rt, tone_file("c2.wav", 5.0))  # while the first POST still hangs
        assert rt.storage.get_session(second).status == "done" and receiver.calls == []
        receiver.release.set()
        wait_until(lambda: len(receiver.accepted()) == 2, 20, "both events")
    finally:
        hook.stop()
        rt.close()
    assert {b["session"]["id"] for b in receiver.accepted()} == {first, second}


def test_an_event_is_given_up_after_its_attempts(tmp_path, receiver_factory, tone_file, caplog):
    receiver = receiver_factory(fail_first=1000)
    rt = _runtime(tmp_path / "data")
    hook = _webhook(rt.storage, receiver.url, max_attempts=3)
    hook.watch(rt)
    hook.start()
    try:
        with caplog.at_level(logging.INFO, logger="scribe.webhook"):
            _transcribe(rt, tone_file("d.wav", 5.0))
            wait_until(lambda: rt.storage.list_webhook_events()[0]["failed_at"] if rt.storage.list_webhook_events()
                       else None, 15, "the event to be given up")
        [row] = rt.storage.list_webhook_events()
    finally:
        hook.stop()
        rt.close()
    assert row["attempts"] == 3 and len(receiver.calls) == 3 and "HTTP 500" in row["last_error"]
    assert "given up after 3 attempts" in caplog.text and "s3cr3t" not in caplog.text


def test_the_final_pass_sends_its_own_event(tmp_path, receiver_factory, tone_file):
    receiver = receiver_factory()
    rt = _runtime(tmp_path / "data")
    rt.final_pass = FinalPass(rt.storage, rt.transcriber).attach(rt.pipeline)
    hook = _webhook(rt.storage, receiver.url)
    hook.watch(rt)
    hook.start()
    try:
        session_id = _transcribe(rt, tone_file("e.wav", 6.0))
        wait_until(lambda: len(receiver.accepted()) == 2, 20, "two events")
    finally:
        hook.stop()
        rt.close()
    events = {b["event"]: b for b in receiver.accepted()}
    assert set(events) == {SESSION_DONE, FINAL_PASS_STORED}
    assert events[FINAL_PASS_STORED]["session"]["id"] == session_id
    assert events[FINAL_PASS_STORED]["segments"].get("final", 0) >= 1


def test_backoff_grows_and_is_capped():
    import random

    rng = random.Random(1)
    for attempts in range(1, 30):
        delay = backoff_seconds(attempts, 5.0, rng=rng)
        assert 2.5 <= delay <= min(3600.0, 5.0 * 2 ** (attempts - 1))


def test_a_real_app_posts_session_done_to_a_receiver_that_fails_first(tmp_path, receiver_factory, tone_file):
    receiver = receiver_factory(fail_first=2)
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_WEBHOOK_URL=receiver.url,
                    SCRIBE_WEBHOOK_RETRY_SECONDS="0.2", SCRIBE_PUBLIC_URL="https://scribe.example.org")
    try:
        with open(tone_file("f.wav", 6.0), "rb") as handle:
            made = httpx2.post(f"{app.url}/api/transcriptions", files={"file": ("f.wav", handle)}, timeout=60)
        assert made.status_code == 202
        session_id = made.json()["session_id"]
        wait_until(lambda: receiver.accepted(), 30, "the app's webhook event")
    finally:
        app.stop()
    body = receiver.accepted()[0]
    assert len(receiver.calls) == 3 and body["event"] == SESSION_DONE and body["session"]["id"] == session_id
    assert body["links"]["session"] == f"https://scribe.example.org/api/sessions/{session_id}"
    assert "s3cr3t" not in app.log()
