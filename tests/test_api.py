"""The REST API against a real `streamlit run app.py` (stub backend, its own data folder):
every endpoint's answer and its errors, the same bytes as the export, the same hits as the
search, uploads through the ingest path and its limit, and the access rules."""

from __future__ import annotations

from pathlib import Path

import httpx2
import numpy as np
import pytest
from audio_files import encode
from pagekit import seed_demo
from scribe_app import ScribeApp
from waiting import wait_until

from scribe.api_access import access_error
from scribe.config import Settings
from scribe.core import database_id
from scribe.export import FORMATS, render
from scribe.guard import is_loopback
from scribe.history import choose_transcript
from scribe.search import search
from scribe.storage import Storage

TOKEN = "t0ken-for-tests-0123456789"
QUERIES = ["budget", '"launch date"', "migration", "thank"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A seeded data folder and what the library itself exports and finds there."""
    data = tmp_path_factory.mktemp("api") / "data"
    ids = seed_demo(data)
    storage = Storage(Settings.from_env({}, data_dir=data).db)
    try:
        exports = {}
        for name in ("plan", "final"):
            session = storage.get_session(ids[name])
            for transcript in (None, "live", "final"):
                shown, available = choose_transcript(storage, session.id, transcript)
                if transcript and transcript not in available:
                    continue
                for fmt in FORMATS:
                    exports[(name, transcript, fmt)] = render(fmt, session, storage.list_segments(session.id, shown))
        found = {q: [(h.session_id, h.seq, h.idx, h.text) for h in search(storage, q, limit=50).hits]
                 for q in QUERIES}
    finally:
        storage.close()
    return data, ids, exports, found


@pytest.fixture(scope="module")
def app(seeded, tmp_path_factory):
    data, *_ = seeded
    server = ScribeApp(data, tmp_path_factory.mktemp("log") / "app.log", SCRIBE_MAX_UPLOAD_MB="1",
                       SCRIBE_STUB_LATENCY="0.5-0.5")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(app):
    with httpx2.Client(base_url=f"{app.url}/api", timeout=60) as client:
        yield client


def _tone_file(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return encode((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), path)


# -- health, listing, detail ----------------------------------------------------------------
def test_health_reports_backend_queue_and_database(api, app):
    body = api.get("/health").json()
    assert body["status"] == "ok" and body["backend"] == "stub"
    assert body["database"] == app.db_path.name and body["database_id"] == database_id(app.db_path)
    assert str(app.data_dir) not in str(body)  # where the server keeps its data is not the caller's business
    assert body["queue"]["depth"] >= 0 and body["live_sessions"] == 0 and body["token_required"] is False
    live_words = body["live_words"]  # the partial lane's capacity, from its warm-up decode
    assert live_words["live"] == 0 and live_words["capacity"] >= 1 and live_words["lagging"] is False
    assert live_words["session_cost"] > 0
    assert live_words["wait_s"] == 2.0  # an idle lane starts as if loaded: the whole wait
    assert body["version"]
    memory = body["memory"]  # the app process's, with a model loaded: tens of MB of malloc in use
    assert memory["rss_mb"] > memory["malloc_in_use_mb"] > 10 and memory["python_blocks"] > 10_000
    assert memory["malloc_free_mb"] >= 0 and memory["malloc_mapped_mb"] >= 0 and memory["database_mb"] > 0


def test_sessions_list_filters_and_errors(api, seeded):
    _, ids, *_ = seeded
    listed = api.get("/sessions").json()
    assert {ids["plan"], ids["tricky"], ids["final"], ids["recording"]} <= {s["id"] for s in listed["sessions"]}
    assert all(set(s["chunks"]) == {"pending", "processing", "done", "failed"} for s in listed["sessions"])
    interrupted = api.get("/sessions", params={"status": "interrupted,stopped"}).json()
    assert {s["id"] for s in interrupted["sessions"]} == {ids["recording"], ids["tricky"]}
    assert interrupted["total"] == 2
    page = api.get("/sessions", params={"limit": 1, "offset": 1}).json()
    assert len(page["sessions"]) == 1 and page["total"] == listed["total"]
    assert api.get("/sessions", params={"since": "2999-01-01"}).json()["total"] == 0
    for bad in ({"status": "sleeping"}, {"limit": 0}, {"since": "last tuesday"}, {"offset": -1}):
        answer = api.get("/sessions", params=bad)
        assert answer.status_code == 400 and answer.json()["error"], bad


def test_session_detail_has_its_chunks_and_unknown_id_is_404(api, seeded):
    _, ids, *_ = seeded
    detail = api.get(f"/sessions/{ids['tricky']}").json()
    assert detail["chunks"]["failed"] == 1 and len(detail["chunk_list"]) == 2
    assert "audio_path" not in detail["chunk_list"][0]
    missing = api.get("/sessions/no-such-session")
    assert missing.status_code == 404 and missing.json() == {"error": "no session 'no-such-session'"}


def test_session_detail_counts_the_very_chunks_it_lists(tmp_path):
    """A chunk that finishes while the detail is read: the counts and the list still agree (the
    CLI stops waiting on the counts and reports from the list)."""
    from starlette.testclient import TestClient

    from scribe.api import ApiContext, create_api
    from scribe.runtime import Runtime

    ids = seed_demo(tmp_path / "data")
    rt = Runtime.build(Settings.from_env({}, data_dir=tmp_path / "data", backend="stub"))
    real_list = rt.storage.list_chunks

    def finishing_meanwhile(session_id: str):
        rows = real_list(session_id)
        for row in rows:
            if row.status == "failed":
                rt.storage.save_silent_chunk(session_id, row.seq, finished_at=row.finished_at or 0.0)
        return rows

    rt.storage.list_chunks = finishing_meanwhile
    try:
        context = ApiContext(runtime=lambda: rt, runtime_for=lambda b, m: rt, token=lambda: TOKEN)
        with TestClient(create_api(context), base_url="http://127.0.0.1",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            answer = client.get(f"/sessions/{ids['tricky']}")
            assert answer.status_code == 200, answer.text
            detail = answer.json()
    finally:
        rt.close()
    listed = [c["status"] for c in detail["chunk_list"]]
    assert "failed" in listed  # read before the chunk finished
    assert detail["chunks"] == {status: listed.count(status) for status in ("pending", "processing", "done", "failed")}


def test_start_up_marks_orphaned_recordings_before_any_page_opens(api, seeded):
    """The seeded 'recording' session was left by no live process: the server's start says so."""
    _, ids, *_ = seeded
    assert api.get(f"/sessions/{ids['recording']}").json()["status"] == "interrupted"


# -- transcripts and search: the same as the library --------------------------------------
def test_transcript_is_byte_for_byte_the_export(api, seeded):
    _, ids, exports, _ = seeded
    for (name, transcript, fmt), expected in exports.items():
        params = {"format": fmt, **({"transcript": transcript} if transcript else {})}
        answer = api.get(f"/sessions/{ids[name]}/transcript", params=params)
        assert answer.status_code == 200
        assert answer.content == expected.encode("utf-8"), (name, transcript, fmt)
    assert exports[("final", None, "txt")] == exports[("final", "final", "txt")]  # final wins by default


def test_transcript_errors(api, seeded):
    _, ids, *_ = seeded
    bad = api.get(f"/sessions/{ids['plan']}/transcript", params={"format": "docx"})
    assert bad.status_code == 400 and "docx" in bad.json()["error"]
    assert api.get(f"/sessions/{ids['plan']}/transcript", params={"transcript": "final"}).status_code == 404
    assert api.get(f"/sessions/{ids['plan']}/transcript", params={"transcript": "draft"}).status_code == 400
    assert api.get("/sessions/nope/transcript").status_code == 404


def test_search_finds_what_the_library_finds(api, seeded):
    *_, found = seeded
    for query, expected in found.items():
        hits = api.get("/search", params={"q": query, "limit": 50}).json()["hits"]
        assert [(h["session_id"], h["seq"], h["idx"], h["text"]) for h in hits] == expected, query
    assert found["budget"] and found['"launch date"']
    for bad in ({"q": "   "}, {"q": "x" * 500}, {}):
        answer = api.get("/search", params=bad)
        assert answer.status_code == 400 and answer.json()["error"]


# -- uploads ----------------------------------------------------------------------------------
def test_upload_is_transcribed_through_the_pipeline(api, tmp_path):
    wav = _tone_file(tmp_path / "standup.wav", 12.0)
    with open(wav, "rb") as handle:
        made = api.post("/transcriptions", files={"file": ("standup.wav", handle)},
                        data={"title": "Stand-up", "chunk_seconds": "5", "policy": "fixed"})
    assert made.status_code == 202, made.text
    body = made.json()
    assert body["title"] == "Stand-up" and body["source"] == "upload" and body["chunk_count"] == 3
    assert body["audio_seconds"] == pytest.approx(12.0, abs=0.05)
    done = wait_until(lambda: (s := api.get(f"/sessions/{body['session_id']}").json())["status"] == "done" and s,
                      30, "the upload to be transcribed")
    assert done["chunks"]["done"] == 3
    text = api.get(f"/sessions/{body['session_id']}/transcript").text
    assert text.count("stub audio of") == 3


def test_upload_with_the_number_of_people_stores_it_and_refuses_a_bad_one(api, tmp_path):
    wav = _tone_file(tmp_path / "trio.wav", 6.0)
    before = api.get("/sessions").json()["total"]
    for bad in ("many", "0.5", "21", "-1"):
        with open(wav, "rb") as handle:
            answer = api.post("/transcriptions", files={"file": ("trio.wav", handle)}, data={"speakers": bad})
        assert answer.status_code == 400 and "people" in answer.json()["error"], (bad, answer.text)
    assert api.get("/sessions").json()["total"] == before  # nothing made by a refused upload
    with open(wav, "rb") as handle:
        made = api.post("/transcriptions", files={"file": ("trio.wav", handle)}, data={"speakers": "3"})
    assert made.status_code == 202, made.text
    assert made.json()["expected_speakers"] == 3
    detail = api.get(f"/sessions/{made.json()['session_id']}").json()
    assert detail["expected_speakers"] == 3


def test_upload_errors_leave_nothing_behind(api, tmp_path):
    before = api.get("/sessions").json()["total"]
    junk = tmp_path / "notes.wav"
    junk.write_bytes(b"RIFF but not really audio" * 40)
    with open(junk, "rb") as handle:
        answer = api.post("/transcriptions", files={"file": ("notes.wav", handle)})
    assert answer.status_code == 400 and answer.json()["error"]
    no_file = api.post("/transcriptions", data={"title": "nothing"}, files={"other": ("x.txt", b"x")})
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]
    not_form = api.post("/transcriptions", json={"file": "x"})
    assert not_form.status_code == 400
    assert api.get("/sessions").json()["total"] == before


def test_upload_over_the_limit_is_413(api, tmp_path):
    big = _tone_file(tmp_path / "long.wav", 40.0)  # 16-bit 16 kHz: 1.28 MB against a 1 MB limit
    assert big.stat().st_size > 1024 * 1024
    before = api.get("/sessions").json()["total"]
    with open(big, "rb") as handle:
        answer = api.post("/transcriptions", files={"file": ("long.wav", handle)})
    assert answer.status_code == 413
    assert "SCRIBE_MAX_UPLOAD_MB" in answer.json()["error"]
    assert api.get("/sessions").json()["total"] == before


def test_upload_with_an_unavailable_backend_is_400(api, tmp_path):
    wav = _tone_file(tmp_path / "short.wav", 2.0)
    with open(wav, "rb") as handle:
        answer = api.post("/transcriptions", files={"file": ("short.wav", handle)}, data={"backend": "gemini"})
    assert answer.status_code == 400 and "GEMINI_API_KEY" in answer.json()["error"]


# -- summaries, rename, delete, retry -------------------------------------------------------
def test_summary_is_stored_and_the_latest_is_served(api, seeded):
    _, ids, *_ = seeded
    assert api.get(f"/sessions/{ids['plan']}/summary").status_code == 404
    first = api.post(f"/sessions/{ids['plan']}/summary", json={"backend": "local"})
    assert first.status_code == 201 and first.json()["version"] == 1 and first.json()["overview"]
    second = api.post(f"/sessions/{ids['plan']}/summary")
    assert second.json()["version"] == 2
    latest = api.get(f"/sessions/{ids['plan']}/summary").json()
    assert latest["version"] == 2 and latest["overview"] == second.json()["overview"]
    assert api.post(f"/sessions/{ids['plan']}/summary", json={"backend": "oracle"}).status_code == 400
    assert api.post("/sessions/nope/summary").status_code == 404
    assert api.post(f"/sessions/{ids['recording']}/summary").status_code == 400  # no text yet


def test_rename_then_errors(api, seeded):
    _, ids, *_ = seeded
    renamed = api.patch(f"/sessions/{ids['final']}", json={"title": "  Migration   review "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Migration review"
    assert api.get(f"/sessions/{ids['final']}").json()["title"] == "Migration review"
    assert api.patch(f"/sessions/{ids['final']}", json={"title": "   "}).status_code == 400
    assert api.patch(f"/sessions/{ids['final']}", json={"name": "x"}).status_code == 400
    assert api.patch("/sessions/nope", json={"title": "x"}).status_code == 404


def test_delete_refuses_a_busy_session_and_removes_a_finished_one(api, app, tmp_path):
    wav = _tone_file(tmp_path / "gone.wav", 30.0)
    with open(wav, "rb") as handle:  # six 5 s chunks at 0.5 s each: busy for about 3 s
        made = api.post("/transcriptions", files={"file": ("gone.wav", handle)},
                        data={"chunk_seconds": "5", "policy": "fixed"}).json()
    refused = api.delete(f"/sessions/{made['id']}")
    assert refused.status_code == 409 and "queued" in refused.json()["error"]
    wait_until(lambda: api.get(f"/sessions/{made['id']}").json()["status"] == "done", 30, "transcription")
    assert (app.data_dir / "audio" / made["id"]).is_dir()
    report = api.delete(f"/sessions/{made['id']}").json()
    assert report["chunks"] == made["chunk_count"] and report["audio_files"] == made["chunk_count"]
    assert api.get(f"/sessions/{made['id']}").status_code == 404
    assert not (app.data_dir / "audio" / made["id"]).exists()
    assert api.delete(f"/sessions/{made['id']}").status_code == 404


def test_retry_requeues_failed_chunks(api, seeded):
    _, ids, *_ = seeded
    assert api.get(f"/sessions/{ids['tricky']}").json()["chunks"]["failed"] == 1
    answer = api.post(f"/sessions/{ids['tricky']}/retry")
    assert answer.status_code == 200 and answer.json() == {"session_id": ids["tricky"], "requeued": 1}
    wait_until(lambda: api.get(f"/sessions/{ids['tricky']}").json()["chunks"]["done"] == 2, 30, "the retry")
    assert api.post("/sessions/nope/retry").status_code == 404


def test_speaker_and_retry_calls_refuse_bad_input_with_a_message(api, seeded):
    _, ids, *_ = seeded
    plan = ids["plan"]
    bad = [api.post(f"/sessions/{plan}/speakers/merge", json={"keep": "1", "drop": 2}),
           api.post(f"/sessions/{plan}/speakers/merge", json={"keep": True, "drop": 2}),
           api.post(f"/sessions/{plan}/speakers/relabel", json={"speakers": 40}),
           api.post(f"/sessions/{plan}/speakers/relabel", json={"speakers": "three"}),
           api.patch(f"/sessions/{plan}/speakers/1", json={"title": "x"}),
           api.patch(f"/sessions/{plan}/speakers/one", json={"name": "x"}),
           api.post(f"/sessions/{plan}/retry", json={"backend": 3}),
           api.post(f"/sessions/{plan}/retry", json={"backend": "gemini"})]  # no key in this app
    for answer in bad:
        assert answer.status_code == 400 and answer.json()["error"], answer.request.url
    assert api.get("/sessions/nope/speakers").status_code == 404
    assert api.post("/sessions/nope/speakers/relabel").status_code == 404
    assert api.get(f"/sessions/{plan}/speakers").json() == {"session_id": plan, "speakers": []}


# -- access and docs -----------------------------------------------------------------------------
def test_a_relayed_client_without_token_is_403(api):
    """A local reverse proxy relaying someone else (X-Forwarded-For) is not this machine."""
    for headers in ({"X-Forwarded-For": "203.0.113.5"}, {"Forwarded": "for=198.51.100.7"}):
        answer = api.get("/sessions", headers=headers)
        assert answer.status_code == 403, headers
        assert "SCRIBE_API_TOKEN" in answer.json()["error"]
    for headers in ({"Host": "scribe.example.com"}, {"Origin": "https://evil.example"}):  # scribe.guard
        assert api.get("/sessions", headers=headers).status_code == 403, headers
    assert api.get("/sessions", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_docs_are_served_without_a_cdn(api):
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert api.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/health", "/sessions", "/sessions/{session_id}", "/sessions/{session_id}/transcript",
                 "/search", "/transcriptions", "/sessions/{session_id}/summary", "/sessions/{session_id}/retry"):
        assert path in paths, path


def test_unknown_api_path_is_json_404(api):
    answer = api.get("/nothing-here")
    assert answer.status_code == 404 and answer.json() == {"error": "Not Found"}


@pytest.fixture(scope="module")
def token_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("token")
    server = ScribeApp(root / "data", root / "app.log", SCRIBE_API_TOKEN=TOKEN)
    yield server
    server.stop()


def test_with_a_token_every_request_needs_it(token_app):
    base = f"{token_app.url}/api"
    assert httpx2.get(f"{base}/sessions").status_code == 401
    wrong = httpx2.get(f"{base}/sessions", headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
    assert wrong.status_code == 401 and "Bearer" in wrong.json()["error"]
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx2.get(f"{base}/sessions", headers=good).status_code == 200
    relayed = httpx2.get(f"{base}/health", headers={**good, "X-Forwarded-For": "203.0.113.5"})
    assert relayed.status_code == 200 and relayed.json()["token_required"] is True
    assert TOKEN not in token_app.log()


# -- the access decision on its own -------------------------------------------------------------
@pytest.mark.parametrize("client, headers, token, expected", [
    ("127.0.0.1", {"host": "127.0.0.1:8501"}, None, None),
    ("127.0.0.2", {"host": "localhost:8501"}, None, None),
    ("::1", {"host": "[::1]:8501"}, None, None),
    ("::ffff:127.0.0.1", {"host": "localhost"}, None, None),
    ("192.168.1.20", {"host": "192.168.1.5:8501"}, None, 403),
    ("10.0.0.3", {"host": "localhost"}, None, 403),
    (None, {"host": "localhost"}, None, 403),
    ("127.0.0.1", {"host": "localhost", "x-forwarded-for": "127.0.0.1, 10.1.2.3"}, None, 403),
    ("127.0.0.1", {"host": "localhost", "x-real-ip": "10.1.2.3"}, None, 403),
    ("127.0.0.1", {"host": "localhost", "forwarded": 'for="[2001:db8::1]:4711";proto=http'}, None, 403),
    ("127.0.0.1", {"host": "localhost", "forwarded": "for=127.0.0.1;proto=http"}, None, None),
    ("127.0.0.1", {"host": "rebound.example:8501"}, None, 403),
    ("127.0.0.1", {"host": "localhost:8501", "origin": "http://localhost:8501"}, None, None),
    ("127.0.0.1", {"host": "localhost:8501", "origin": "https://evil.example"}, None, 403),
    ("127.0.0.1", {"host": "localhost:8501", "origin": "http://localhost:9999"}, None, 403),
    ("127.0.0.1", {"host": "localhost:8501", "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors"}, None, 403),
    ("127.0.0.1", {"host": "localhost:8501", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}, None, None),
    ("127.0.0.1", {"host": "localhost:8501", "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"}, None, None),
    ("192.168.1.20", {"host": "x", "authorization": f"Bearer {TOKEN}", "sec-fetch-site": "cross-site"}, TOKEN, 403),
    ("192.168.1.20", {"host": "x", "authorization": f"Bearer {TOKEN}"}, TOKEN, None),
    ("192.168.1.20", {"host": "x", "authorization": f"bearer {TOKEN}"}, TOKEN, None),
    ("127.0.0.1", {"host": "localhost"}, TOKEN, 401),
    ("127.0.0.1", {"host": "localhost", "authorization": f"Bearer {TOKEN}x"}, TOKEN, 401),
    ("127.0.0.1", {"host": "localhost", "authorization": f"Basic {TOKEN}"}, TOKEN, 401),
])
def test_access_decision(client, headers, token, expected):
    error = access_error(client, headers, token)
    assert (error.status if error else None) == expected


def test_loopback_names():
    assert is_loopback("127.9.9.9") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("128.0.0.1") and not is_loopback("localhost.evil.example") and not is_loopback("")



def test_start_up_recovers_pending_chunks_without_any_request(tmp_path):
    """A chunk left pending by a dead process is transcribed once the server starts, before any
    browser or API client asks for anything."""
    from scribe.audio import write_flac_atomic
    from scribe.core import ChunkRow

    data = tmp_path / "data"
    settings = Settings.from_env({}, data_dir=data)
    storage = Storage(settings.db)
    session = storage.create_session(title="Left behind", source="mic", backend="stub", model="stub",
                                     chunk_seconds=5, chunk_policy="fixed:5")
    path = settings.audio_dir / session.id / "000000.flac"
    write_flac_atomic((0.3 * np.sin(np.arange(80_000) / 10)).astype(np.float32), path)
    storage.insert_chunk(ChunkRow(session_id=session.id, seq=0, start_ms=0, end_ms=5000, start_sample=0,
                                  end_sample=80_000, audio_path=str(path), status="pending"))
    storage.close()
    app = ScribeApp(data, tmp_path / "app.log", SCRIBE_LOG_LEVEL="INFO")
    try:
        wait_until(lambda: "recovered 1 unfinished chunks" in app.log(), 30, "start-up recovery")
        detail = f"{app.url}/api/sessions/{session.id}"  # asked only after recovery ran
        wait_until(lambda: httpx2.get(detail).json()["chunks"]["done"] == 1, 30, "the recovered chunk")
    finally:
        app.stop()
    storage = Storage(settings.db)
    try:
        assert storage.chunk_counts(session.id)["done"] == 1
        assert storage.get_session(session.id).status == "interrupted"
        assert "stub audio of 5.00 seconds" in storage.session_text(session.id)
    finally:
        storage.close()


def test_pages_and_the_api_share_one_runtime(tmp_path, monkeypatch):
    """`runtime()` in a page returns the object start-up built (the API's), not a second one."""
    from pagekit import close_runtime
    from streamlit.testing.v1 import AppTest

    data = tmp_path / "data"
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(data))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    for var in ("SCRIBE_DB", "GEMINI_API_KEY", "SCRIBE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    from pages import _shared

    built = _shared.server_hooks().build_runtime(None, None)

    def page() -> None:
        import streamlit as st

        from pages._shared import runtime, sidebar

        sidebar()
        st.write(f"runtime {id(runtime())}")

    try:
        at = AppTest.from_function(page, default_timeout=30).run()
        assert not at.exception
        assert [m.value for m in at.markdown] == [f"runtime {id(built)}"]
    finally:
        close_runtime(data)


@pytest.mark.parametrize("variable, value, message", [
    ("SCRIBE_API_TOKEN", "short", "SCRIBE_API_TOKEN must be at least 16 characters"),
    ("SCRIBE_API_URL", "127.0.0.1:8501", "SCRIBE_API_URL must start with http:// or https://"),
    ("SCRIBE_WEBHOOK_URL", "ftp://x", "SCRIBE_WEBHOOK_URL must start with http:// or https://"),
    ("SCRIBE_PUBLIC_URL", "scribe.example", "SCRIBE_PUBLIC_URL must start with http:// or https://"),
    ("SCRIBE_WEBHOOK_RETRY_SECONDS", "0", "SCRIBE_WEBHOOK_RETRY_SECONDS must be positive"),
    ("SCRIBE_WEBHOOK_MAX_ATTEMPTS", "0", "SCRIBE_WEBHOOK_MAX_ATTEMPTS must be between 1 and 100"),
])
def test_api_settings_are_validated(variable, value, message):
    from scribe.errors import SettingsError

    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_secrets_stay_out_of_the_settings_repr():
    settings = Settings.from_env({"SCRIBE_API_TOKEN": TOKEN, "SCRIBE_WEBHOOK_URL": "https://h.example/s3cr3t"})
    assert settings.api_token == TOKEN and TOKEN not in repr(settings) and "s3cr3t" not in repr(settings)


def test_an_app_that_cannot_start_answers_503_with_the_reason(tmp_path):
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_MAX_CONCURRENCY="0")
    try:
        answer = httpx2.get(f"{app.url}/api/health")
        assert answer.status_code == 503
        assert answer.json()["error"] == ("Scribe cannot start: SCRIBE_MAX_CONCURRENCY must be between 1 "
                                          "and 256")
    finally:
        app.stop()
