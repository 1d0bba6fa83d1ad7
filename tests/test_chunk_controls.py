"""The chunk controls component (AppTest on a small script) and the library under it."""

from __future__ import annotations

import time

import fake_gemini as fg
import numpy as np
import pytest
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

from scribe import retranscribe
from scribe.chunking import Chunk
from scribe.costs import session_cost
from scribe.errors import ScribeError
from scribe.pipeline import Backend
from scribe.runtime import Runtime
from scribe.transcribers.stub import StubTranscriber

SECRET = "sk-page-secret-key-424242"


def _page(rt, session_id):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path.cwd()))
    from pages._chunk_controls import render_chunk_controls

    render_chunk_controls(rt, session_id)


def _app(rt, session_id) -> AppTest:
    return AppTest.from_function(_page, args=(rt, session_id), default_timeout=30)


def _tone_chunks(session_id: str, n: int, seconds: float = 1.0) -> list[Chunk]:
    size = int(seconds * 16_000)
    t = np.arange(size) / 16_000
    return [Chunk(session_id, seq, seq * size, (seq + 1) * size,
                  (0.3 * np.sin(2 * np.pi * (300 + 50 * seq) * t)).astype(np.float32), time.time())
            for seq in range(n)]


def _runtime(settings, fake, key: str, **changes) -> Runtime:
    config = settings.with_changes(backend="gemini", gemini_api_key=key, gemini_base_url=fake.base_url,
                                   gemini_timeout=2.0, gemini_rpm=600, skip_silence=False,
                                   retry_base_seconds=0.01, **changes)
    return Runtime.build(config)


def _session_with_chunks(rt: Runtime, n: int = 3) -> str:
    session_id = rt.storage.create_session(title="t", source="cli", backend=rt.transcriber.name,
                                           model=rt.transcriber.model, chunk_seconds=1.0,
                                           chunk_policy="fixed:1", status="stopped").id
    for chunk in _tone_chunks(session_id, n):
        rt.pipeline.submit(chunk)
    assert rt.pipeline.wait_idle(timeout=30)
    return session_id


def _page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success")
             for e in getattr(at, kind)]
    parts += [str(m.value) + str(m.label) for m in at.metric]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_rejected_key_is_explained_and_retry_button_requeues(settings, fake_gemini):
    fake_gemini.api_keys.add(SECRET)
    fake_gemini.revoked_keys.add(SECRET)
    rt = _runtime(settings, fake_gemini, SECRET)
    session_id = _session_with_chunks(rt)
    at = _app(rt, session_id).run()
    assert not at.exception
    assert any("rejected the API key" in e.value for e in at.error)
    assert "3 chunk(s) failed" in at.warning[0].value
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 3
    assert SECRET not in _page_text(at)

    fake_gemini.revoked_keys.discard(SECRET)  # the key is fixed (e.g. re-enabled in the console)
    at.button(key=f"retry-failed-{session_id}").click().run()
    assert "Re-queued 3 chunk(s)" in at.success[0].value
    assert rt.pipeline.wait_idle(timeout=30)
    assert rt.storage.chunk_counts(session_id)["done"] == 3
    at.run()
    assert not at.error and not at.warning and SECRET not in _page_text(at)
    rt.close()


def test_missing_key_disables_gemini_with_a_clear_message(settings):
    rt = Runtime.build(settings.with_changes(backend="stub", skip_silence=False))
    session_id = _session_with_chunks(rt, 2)
    at = _app(rt, session_id).run()
    assert at.selectbox(key=f"retranscribe-backend-{session_id}").value == "local"
    at.selectbox(key=f"retranscribe-backend-{session_id}").select("gemini").run()
    assert any("GEMINI_API_KEY" in i.value for i in at.info)
    assert at.button(key=f"retranscribe-all-{session_id}").disabled
    rt.close()


def test_retranscribe_one_chunk_with_gemini_from_a_stub_runtime(settings, fake_gemini):
    config = settings.with_changes(backend="stub", gemini_api_key=fg.DEFAULT_KEY,
                                   gemini_base_url=fake_gemini.base_url, skip_silence=False)
    rt = Runtime.build(config)
    session_id = _session_with_chunks(rt, 3)
    at = _app(rt, session_id).run()
    at.selectbox(key=f"retranscribe-backend-{session_id}").select("gemini")
    at.selectbox(key=f"retranscribe-seq-{session_id}").select(1)
    at.button(key=f"retranscribe-one-{session_id}").click().run()
    assert not at.exception and "Re-queued 1 chunk(s)" in at.success[0].value
    assert rt.pipeline.wait_idle(timeout=30)
    chunks = rt.storage.list_chunks(session_id)
    assert [c.backend for c in chunks] == ["stub", "gemini", "stub"]
    texts = [s.text for s in rt.storage.list_segments(session_id)]
    assert len(texts) == 3 and "fake words" in texts[1] and texts[0].startswith("stub audio")
    assert len(fake_gemini.requests) == 1
    at.run()
    assert float(at.metric[3].value.lstrip("$")) > 0  # the Gemini chunk has a cost
    rt.close()


def test_retranscribe_whole_session_switches_backend_and_replaces_segments(settings, fake_gemini):
    rt = _runtime(settings, fake_gemini, fg.DEFAULT_KEY)
    session_id = _session_with_chunks(rt, 4)
    rt.backends["stub"] = Backend(StubTranscriber())  # stands in for local Whisper
    assert retranscribe.retranscribe(rt, session_id, backend="stub") == 4
    assert rt.pipeline.wait_idle(timeout=30)
    segments = rt.storage.list_segments(session_id)
    assert [s.seq for s in segments] == [0, 1, 2, 3]
    assert all(s.text.startswith("stub audio") for s in segments)
    assert rt.storage.get_session(session_id).backend == "stub"
    assert session_cost(rt.storage, session_id).dollars == 0.0  # the stub replaced Gemini's tokens
    rt.close()


def test_retranscribe_refuses_gemini_without_a_key_before_queueing(settings):
    rt = Runtime.build(settings.with_changes(backend="stub", skip_silence=False))
    session_id = _session_with_chunks(rt, 1)
    with pytest.raises(ScribeError, match="GEMINI_API_KEY"):
        retranscribe.retranscribe(rt, session_id, backend="gemini")
    assert rt.storage.chunk_counts(session_id)["done"] == 1
    rt.close()


def test_session_cost_sums_tokens_times_price(settings, fake_gemini):
    rt = _runtime(settings, fake_gemini, fg.DEFAULT_KEY)
    session_id = _session_with_chunks(rt, 2)
    cost = session_cost(rt.storage, session_id)
    # each 1 s chunk: 92 tokens in (audio, $1.00/M), 25 out ($2.50/M) on gemini-2.5-flash
    assert cost.input_tokens == 184 and cost.output_tokens == 50
    assert cost.dollars == pytest.approx((184 * 1.00 + 50 * 2.50) / 1e6)
    assert "184 tokens in" in cost.label()
    rt.close()


def _backlog_page(rt):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path.cwd()))
    from pages._chunk_controls import render_backlog_warning

    render_backlog_warning(rt)


def test_backlog_warning_appears_past_the_threshold(settings):
    rt = Runtime.build(settings.with_changes(backend="stub", backlog_warn_seconds=2.0), start=False)
    session_id = rt.storage.create_session(title="t", source="mic", backend="stub", model="m",
                                           chunk_seconds=1.0, chunk_policy="fixed:1").id
    at = AppTest.from_function(_backlog_page, args=(rt,), default_timeout=30).run()
    assert not at.warning
    for chunk in _tone_chunks(session_id, 3):
        rt.pipeline.submit_nowait(chunk)  # the queue is not running: 3 s of audio waits
    at.run()
    assert "3 s of audio waiting" in at.warning[0].value
    rt.pipeline.start()
    assert rt.pipeline.wait_idle(timeout=30)
    at.run()
    assert not at.warning
    rt.close()
