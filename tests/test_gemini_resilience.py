"""The queue keeps its promises when Gemini fails: real SDK, fake server, real pipeline and DuckDB."""

from __future__ import annotations

import hashlib
import logging
import time

import fake_gemini as fg
import numpy as np
import soundfile as sf
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)

from scribe import gemini_client as gc
from scribe.chunking import Chunk
from scribe.export import FORMATS, render
from scribe.pipeline import Pipeline, PipelineHooks, PipelineOptions
from scribe.ratelimit import RateLimit
from scribe.retranscribe import failures, retry_failed
from scribe.runtime import Runtime
from scribe.storage import Storage
from scribe.transcribers.gemini import GeminiTranscriber

RATE_LIMIT, WINDOW_S, MARGIN_S = 8, 2.0, 1.0
"""8 calls per 2 s (240 per minute) so the limiter engages within a fast test; the margin
absorbs the delay between taking a slot and the request reaching the server."""


def _chunks(session_id: str, n: int, seconds: float = 1.0) -> list[Chunk]:
    """n distinct tone chunks (distinct audio, so the fake can tell them apart)."""
    rate, size = 16_000, int(seconds * 16_000)
    t = np.arange(size) / rate
    return [Chunk(session_id, seq, seq * size, (seq + 1) * size,
                  (0.3 * np.sin(2 * np.pi * (200 + 37 * seq) * t)).astype(np.float32), time.time())
            for seq in range(n)]


def _session(storage: Storage, backend: str = "gemini") -> str:
    return storage.create_session(title="t", source="cli", backend=backend, model="m",
                                  chunk_seconds=1.0, chunk_policy="fixed:1", status="stopped").id


def _fingerprint(path: str) -> str:
    pcm, _ = sf.read(path, dtype="int16")
    return hashlib.sha1(pcm.tobytes()).hexdigest()


def _flaky(fake: fg.FakeGemini):
    """~30 % of calls fail: the first try of 3 chunks in 10, the second try of 1 in 10,
    cycling through 429 (with retryDelay), 500, 503, a hang past the timeout, malformed
    JSON and empty candidates."""
    order: dict[str, int] = {}
    failures_ = [fg.rate_limited(0.2), fg.server_error(500), fg.hang(6.0), fg.malformed(),
                 fg.server_error(503), fg.empty_candidates()]

    def respond(request: fg.RecordedRequest) -> fg.Answer | None:
        n = order.setdefault(request.fingerprint, len(order))
        if (request.attempt == 1 and n % 10 in (0, 3, 6)) or (request.attempt == 2 and n % 10 == 0):
            return failures_[(n + request.attempt) % len(failures_)]
        return None

    fake.responder = respond


def test_flaky_api_every_chunk_done_exactly_once_within_the_rate_limit(settings, storage, fake_gemini):
    # 2.5 s: far above a normal answer even on a loaded machine, so only scripted hangs time out
    client = gc.client_for(fg.DEFAULT_KEY, base_url=fake_gemini.base_url, timeout_s=2.5)
    transcriber = GeminiTranscriber(client, "gemini-2.5-flash")
    transcriber.transcribe(np.zeros(1600, np.float32))  # warm the connection, then forget it
    fake_gemini.requests.clear()
    _flaky(fake_gemini)
    pipeline = Pipeline(storage, transcriber, audio_dir=settings.audio_dir,
                        options=PipelineOptions(max_concurrency=4, max_attempts=5, retry_base_seconds=0.05,
                                                retry_max_seconds=0.5),
                        hooks=PipelineHooks(before_call=RateLimit(RATE_LIMIT, per_seconds=WINDOW_S,
                                                                  margin_seconds=MARGIN_S))).start()
    session_id = _session(storage)
    for chunk in _chunks(session_id, 20):
        pipeline.submit_nowait(chunk)
    assert pipeline.wait_idle(timeout=60)
    pipeline.stop()

    chunks, segments = storage.list_chunks(session_id), storage.list_segments(session_id)
    requests = fake_gemini.audio_requests()
    failed_calls = [r for r in requests if r.answer != "ok"]
    assert [c.status for c in chunks] == ["done"] * 20
    assert 0.25 <= len(failed_calls) / len(requests) <= 0.35
    # exactly one segment per chunk, and it is the transcript of that chunk's own audio
    assert [s.seq for s in segments] == list(range(20))
    for chunk, segment in zip(chunks, segments):
        fingerprint = _fingerprint(chunk.audio_path)
        calls = [r for r in requests if r.fingerprint == fingerprint]
        assert fingerprint[:8] in segment.text
        assert chunk.attempts == len(calls) and sum(r.answer == "ok" for r in calls) == 1
        assert chunk.input_tokens == 32 + 60 and chunk.error is None
    assert pipeline.stats().retried == len(failed_calls)
    assert fake_gemini.max_in_window(WINDOW_S) <= RATE_LIMIT
    # and the limiter really had to hold calls back
    assert requests[-1].at - requests[0].at >= (len(requests) // RATE_LIMIT - 1) * WINDOW_S


def _gemini_runtime(settings, fake, key: str, storage: Storage | None = None) -> Runtime:
    config = settings.with_changes(backend="gemini", gemini_api_key=key, gemini_base_url=fake.base_url,
                                   gemini_timeout=2.0, gemini_rpm=600, max_concurrency=2,
                                   retry_base_seconds=2.0, skip_silence=False)
    return Runtime.build(config, storage=storage or Storage(config.db))


def test_rejected_key_fails_fast_and_retry_after_fixing_the_key_works(settings, fake_gemini):
    revoked = "revoked-key-5555"
    fake_gemini.revoked_keys.add(revoked)
    runtime = _gemini_runtime(settings, fake_gemini, revoked)
    session_id = _session(runtime.storage)
    for chunk in _chunks(session_id, 3):
        runtime.pipeline.submit(chunk)
    assert runtime.pipeline.wait_idle(timeout=30)

    report = failures(runtime, session_id)
    assert [c.attempts for c in report.failed] == [1, 1, 1] and report.key_rejected
    assert all(c.error.startswith(gc.KEY_REJECTED) and "403" in c.error for c in report.failed)
    assert len(fake_gemini.requests) == 3 and runtime.pipeline.stats().retried == 0  # one call each
    runtime.close()

    fixed = _gemini_runtime(settings, fake_gemini, fg.DEFAULT_KEY)
    assert retry_failed(fixed, session_id) == 3
    assert fixed.pipeline.wait_idle(timeout=30)
    assert fixed.storage.chunk_counts(session_id)["done"] == 3
    assert len(fixed.storage.list_segments(session_id)) == 3
    fixed.close()


def test_silent_chunk_is_stored_empty_and_never_sent(settings, fake_gemini, tone):
    config = settings.with_changes(backend="gemini", gemini_api_key=fg.DEFAULT_KEY,
                                   gemini_base_url=fake_gemini.base_url)
    runtime = Runtime.build(config)
    session_id = _session(runtime.storage)
    silence = np.zeros(16_000 * 2, np.float32)
    runtime.pipeline.submit(Chunk(session_id, 0, 0, silence.size, silence, time.time()))
    runtime.pipeline.submit(Chunk(session_id, 1, silence.size, 2 * silence.size, tone(2.0), time.time()))
    assert runtime.pipeline.wait_idle(timeout=30)
    chunks = runtime.storage.list_chunks(session_id)
    assert [(c.status, c.skip_reason) for c in chunks] == [("done", "silence")] * 2
    assert runtime.storage.list_segments(session_id) == [] and fake_gemini.requests == []
    assert runtime.pipeline.stats().skipped_silent == 2
    runtime.close()


def test_runtime_wires_the_rpm_limit_for_gemini_only(settings, fake_gemini):
    config = settings.with_changes(backend="gemini", gemini_api_key=fg.DEFAULT_KEY,
                                   gemini_base_url=fake_gemini.base_url, gemini_rpm=12)
    runtime = Runtime.build(config, start=False)
    limit = runtime.pipeline_rate_limit()
    assert isinstance(limit, RateLimit) and limit.per_minute == 12
    stub = Runtime.build(settings.with_changes(backend="stub"), start=False)
    assert stub.pipeline_rate_limit() is None
    runtime.storage.close()
    stub.storage.close()


def test_key_never_appears_in_logs_db_or_exports(settings, fake_gemini, caplog, capsys):
    secret = "sk-super-secret-key-000111222"
    fake_gemini.api_keys.add(secret)
    fake_gemini.script(fg.forbidden(f"key {secret} was leaked"), fg.bad_request(f"bad {secret}"),
                       fg.rate_limited(0.1))
    caplog.set_level(logging.DEBUG)
    config = settings.with_changes(gemini_api_key=secret, gemini_base_url=fake_gemini.base_url,
                                   retry_base_seconds=0.01, retry_max_seconds=0.2, skip_silence=False)
    runtime = Runtime.build(config.with_changes(backend="gemini"))
    session_id = _session(runtime.storage)
    for chunk in _chunks(session_id, 4):
        runtime.pipeline.submit(chunk)
    assert runtime.pipeline.wait_idle(timeout=30)
    counts = runtime.storage.chunk_counts(session_id)
    assert counts["failed"] == 2 and counts["done"] == 2  # the scripted errors really happened

    tables = [r[0] for r in runtime.storage.cursor().execute("SHOW TABLES").fetchall()]
    dump = "".join(str(runtime.storage.cursor().execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
    session = runtime.storage.get_session(session_id)
    exports = "".join(render(f, session, runtime.storage.list_segments(session_id)) for f in FORMATS)
    runtime.close()
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, dump, exports, repr(config)):
        assert secret not in text
    assert "[redacted]" in dump
