"""The realtime transcription socket (`/v1/realtime?intent=transcription`) against a real
`streamlit run app.py` with the local tiny.en model: a session through the official SDK's
realtime client fed faster than real time (deltas before completion, completed items equal to
the stored transcript, WER bound), a socket dropped mid-stream (interrupted, chunks kept,
resumed on a new socket), the token rules, the live-session limit, every bad event
answered with an OpenAI error event on a socket that stays open where it can, and (an app
with the multilingual `base`) a German session's live words in German."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time

import httpx2
import numpy as np
import openai
import pytest
import speech
from scribe_app import ScribeApp
from waiting import eventually
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scribe.wer import word_error_rate

TOKEN = "rt-t0ken-for-tests-0123456789"
RATE = 24_000
PIECE_S = 0.1
WER_BOUND = 0.35
SESSION = {"type": "transcription", "audio": {"input": {
    "format": {"type": "audio/pcm", "rate": RATE},
    "transcription": {"model": "whisper-1", "language": "en"}}}}


def pieces(pcm: bytes, seconds: float = PIECE_S) -> list[str]:
    step = int(seconds * RATE) * 2
    return [base64.b64encode(pcm[i:i + step]).decode() for i in range(0, len(pcm), step)]


@pytest.fixture(scope="module")
def spoken():
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --system installs it)")
    audio, reference = speech.meeting_audio(speech.MEETING_TURNS[:4])
    return speech.pcm16_at(audio, RATE), reference


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtapp")
    server = ScribeApp(root / "data", root / "app.log", stub=False, SCRIBE_API_TOKEN=TOKEN,
                       SCRIBE_MAX_LIVE_SESSIONS="2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scribe_api(app):
    with httpx2.Client(base_url=f"{app.url}/api", timeout=60,
                       headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http


def ws_url(app, query: str = "intent=transcription") -> str:
    return f"ws://127.0.0.1:{app.port}/v1/realtime?{query}"


def socket(app, query: str = "intent=transcription", token: str | None = TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(ws_url(app, query), additional_headers=headers, open_timeout=30, **kwargs)


def recv(ws, timeout: float = 30.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, kind: str, timeout: float = 120.0) -> list[dict]:
    """Events up to and including the first of `kind`."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        seen.append(recv(ws, max(0.1, deadline - time.monotonic())))
        if seen[-1]["type"] == kind:
            return seen
    raise AssertionError(f"no {kind} in {[e['type'] for e in seen]}")


def send(ws, event: dict) -> None:
    ws.send(json.dumps(event))


def configure(ws) -> dict:
    assert recv(ws)["type"] == "session.created"
    send(ws, {"type": "session.update", "session": SESSION})
    updated = recv_until(ws, "session.updated")[-1]
    return updated["session"]


def _sessions(scribe_api) -> dict[str, dict]:
    return {s["id"]: s for s in scribe_api.get("/sessions", params={"limit": 1000}).json()["sessions"]}


def _stored_text(scribe_api, sid: str) -> str:
    body = scribe_api.get(f"/sessions/{sid}/transcript", params={"format": "json", "transcript": "live"}).json()
    return " ".join(s["text"].strip() for s in body["segments"] if s["text"].strip())


# -- the official client ---------------------------------------------------------------------
def test_sdk_session_faster_than_real_time_matches_the_stored_transcript(app, spoken, scribe_api):
    pcm, reference = spoken
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=TOKEN)
    events: list = []
    with client.realtime.connect(extra_query={"intent": "transcription"}, max_retries=0) as conn:
        reader = threading.Thread(target=_read_all, args=(conn, events), daemon=True)
        reader.start()
        conn.session.update(session=SESSION)
        for piece in pieces(pcm):  # twice real time
            conn.input_audio_buffer.append(audio=piece)
            time.sleep(PIECE_S / 2)
        conn.input_audio_buffer.commit()
        # Done when every item is completed and the items hold all the audio sent: a chunk
        # closed mid-stream may complete before the commit's own item is announced.
        assert eventually(lambda: _all_completed(events, len(pcm) / 2 / RATE), timeout=180, poll=0.3)
        conn.close()
    reader.join(10)
    kinds = [e.type for e in events]
    assert kinds[0] == "session.created" and "session.updated" in kinds
    first_completed = kinds.index("conversation.item.input_audio_transcription.completed")
    assert "conversation.item.input_audio_transcription.delta" in kinds[:first_completed], kinds
    sid = events[1].session.id
    completed = [e for e in events if e.type == "conversation.item.input_audio_transcription.completed"]
    committed = [e.item_id for e in events if e.type == "input_audio_buffer.committed"]
    assert sorted(e.item_id for e in completed) == sorted(committed) and len(committed) >= 2
    by_item = {e.item_id: e.transcript for e in completed}
    text = " ".join(by_item[i] for i in committed if by_item[i])
    assert eventually(lambda: _sessions(scribe_api)[sid]["status"] in ("stopped", "done"), timeout=30, poll=0.3)
    assert text == _stored_text(scribe_api, sid)
    assert word_error_rate(reference, text) <= WER_BOUND, text
    session = _sessions(scribe_api)[sid]
    assert session["source"] == "realtime" and session["chunks"]["done"] == len(committed)
    deltas = [e for e in events if e.type == "conversation.item.input_audio_transcription.delta"]
    assert all(e.item_id in committed for e in deltas)


def _read_all(conn, out: list) -> None:
    """Reader thread: every server event into `out` until the connection closes."""
    with contextlib.suppress(ConnectionClosed, openai.OpenAIError):  # closed under the iterator
        out.extend(conn)


def _all_completed(events: list, seconds: float) -> bool:
    """Every committed item has its answer, and the completed items cover `seconds` of audio."""
    events = list(events)
    committed = {e.item_id for e in events if e.type == "input_audio_buffer.committed"}
    done = {e.item_id for e in events if e.type.startswith("conversation.item.input_audio_transcription.")
            and e.type != "conversation.item.input_audio_transcription.delta"}
    covered = sum(e.usage.seconds for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    return bool(committed) and committed <= done and covered >= seconds - 0.05


def test_the_sessions_prompt_spells_a_rare_name_in_the_completed_item(app):
    audio, _ = speech.meeting_audio(["Please send the report to Quenby Zarkowitz before Thursday."])
    asked = {**SESSION, "audio": {"input": {**SESSION["audio"]["input"], "transcription": {
        "model": "whisper-1", "language": "en", "prompt": "Quenby Zarkowitz."}}}}
    with socket(app) as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": asked})
        updated = recv_until(ws, "session.updated")[-1]
        assert updated["session"]["audio"]["input"]["transcription"]["prompt"] == "Quenby Zarkowitz."
        for piece in pieces(speech.pcm16_at(audio, RATE)):
            send(ws, {"type": "input_audio_buffer.append", "audio": piece})
        send(ws, {"type": "input_audio_buffer.commit"})
        done = recv_until(ws, "conversation.item.input_audio_transcription.completed")[-1]
    assert "Quenby Zarkowitz" in done["transcript"], done["transcript"]


GERMAN = ["Guten Morgen zusammen, wir besprechen heute das Budget für das dritte Quartal.",
          "Danach sprechen wir über die Pläne für das nächste Jahr."]


@pytest.fixture(scope="module")
def multilingual_app(tmp_path_factory):
    """The app with `base` (multilingual) on the chunk and partial lanes; the server's language is en."""
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --system installs it)")
    root = tmp_path_factory.mktemp("rtbase")
    server = ScribeApp(root / "data", root / "app.log", stub=False, inherit=(), SCRIBE_API_TOKEN=TOKEN,
                       SCRIBE_WHISPER_MODEL="base", SCRIBE_PARTIAL_MODEL="base", SCRIBE_FINAL_MODEL="tiny.en")
    yield server
    server.stop()


def test_a_german_session_gets_german_live_words_in_its_deltas(multilingual_app):
    """`language: de` reaches the partial lane: the deltas (live words, before the chunk's
    completed) read German, where the server's language would give English words."""
    audio = np.concatenate([speech.synthesize(GERMAN[0], voice="de"), np.zeros(8000, np.float32),
                            speech.synthesize(GERMAN[1], voice="de")])
    asked = {**SESSION, "audio": {"input": {**SESSION["audio"]["input"], "transcription": {
        "model": "whisper-1", "language": "de"}}}}
    with socket(multilingual_app) as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": asked})
        recv_until(ws, "session.updated")
        for piece in pieces(speech.pcm16_at(audio, RATE)):  # twice real time
            send(ws, {"type": "input_audio_buffer.append", "audio": piece})
            time.sleep(PIECE_S / 2)
        send(ws, {"type": "input_audio_buffer.commit"})
        events = recv_until(ws, "conversation.item.input_audio_transcription.completed", timeout=180)
    live = "".join(e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta")
    print(f"deltas: {live!r}; completed: {events[-1]['transcript']!r}")
    assert "Guten Morgen" in live and "Good morning" not in live, live
    assert word_error_rate(" ".join(GERMAN), events[-1]["transcript"]) <= 0.7


# -- a dropped socket ---------------------------------------------------------------------------
def test_a_dropped_socket_leaves_the_session_interrupted_and_a_new_socket_resumes_it(app, spoken, scribe_api):
    pcm, _ = spoken
    ws = socket(app)
    sid = configure(ws)["id"]
    half = pieces(pcm)[: len(pieces(pcm)) // 2]
    for piece in half:
        send(ws, {"type": "input_audio_buffer.append", "audio": piece})
    send(ws, {"type": "input_audio_buffer.commit"})
    recv_until(ws, "input_audio_buffer.committed")
    for piece in pieces(pcm)[len(half): len(half) + 10]:  # one more second, never committed
        send(ws, {"type": "input_audio_buffer.append", "audio": piece})
    time.sleep(0.5)
    ws.socket.close()  # the client vanishes: no close frame
    assert eventually(lambda: _sessions(scribe_api)[sid]["status"] == "interrupted", timeout=30, poll=0.3)
    assert eventually(lambda: _sessions(scribe_api)[sid]["chunks"]["pending"] == 0
               and _sessions(scribe_api)[sid]["chunks"]["processing"] == 0, timeout=120, poll=0.3)
    kept = _sessions(scribe_api)[sid]
    assert kept["chunks"]["done"] >= 2 and _stored_text(scribe_api, sid)

    with socket(app, f"intent=transcription&session={sid}") as again:
        assert configure(again)["id"] == sid
        for piece in pieces(pcm)[len(half) + 10:]:
            send(again, {"type": "input_audio_buffer.append", "audio": piece})
        send(again, {"type": "input_audio_buffer.commit"})
        committed = recv_until(again, "input_audio_buffer.committed")[-1]
        assert committed["item_id"] == f"item_{sid}_{kept['chunks']['done']}"
        recv_until(again, "conversation.item.input_audio_transcription.completed")
    assert eventually(lambda: _sessions(scribe_api)[sid]["status"] in ("stopped", "done"), timeout=30, poll=0.3)
    chunks = scribe_api.get(f"/sessions/{sid}").json()["chunk_list"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert all(a["end_ms"] == b["start_ms"] for a, b in itertools.pairwise(chunks))


def test_a_client_that_commits_and_leaves_at_once_ends_the_session_stopped_and_quietly(app, spoken, scribe_api):
    """All the audio sent at once, a commit and a clean close while the server is still
    working through it (and sending events to a client that is gone): every sample is
    stored, the session is stopped (the client's close code decides, not a failed send),
    and the app logs no exception."""
    pcm, _ = spoken
    ws = socket(app)
    sid = configure(ws)["id"]
    for piece in pieces(pcm):
        send(ws, {"type": "input_audio_buffer.append", "audio": piece})
    send(ws, {"type": "input_audio_buffer.commit"})
    ws.close()  # code 1000, without reading a single answer
    assert eventually(lambda: _sessions(scribe_api)[sid]["status"] in ("stopped", "done"), timeout=60, poll=0.3), \
        _sessions(scribe_api)[sid]["status"]
    assert eventually(lambda: _sessions(scribe_api)[sid]["chunks"]["pending"] == 0
                      and _sessions(scribe_api)[sid]["chunks"]["processing"] == 0, timeout=120, poll=0.3)
    chunks = scribe_api.get(f"/sessions/{sid}").json()["chunk_list"]
    assert chunks[0]["start_ms"] == 0 and abs(chunks[-1]["end_ms"] - len(pcm) / 2 / RATE * 1000) < 50
    assert "Exception in ASGI application" not in app.log()


# -- bad events ------------------------------------------------------------------------------------
def _error(ws, code: str) -> dict:
    event = recv(ws)
    assert event["type"] == "error", event
    error = event["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code, error
    return error


def test_every_bad_event_gets_an_error_and_the_socket_goes_on(app, spoken, scribe_api):
    pcm, _ = spoken
    before = _sessions(scribe_api)
    with socket(app) as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "input_audio_buffer.append", "audio": pieces(pcm)[0]})
        _error(ws, "session_not_configured")
        ws.send("{not json")
        _error(ws, "invalid_json")
        send(ws, {"type": "response.create"})
        _error(ws, "unknown_event")
        ws.send(json.dumps(["session.update"]))
        _error(ws, "invalid_event")
        wrong_rate = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
        send(ws, {"type": "session.update", "session": wrong_rate})
        assert _error(ws, "unsupported_audio_format")["param"] == "session.audio.input.format"
        send(ws, {"type": "transcription_session.update", "session": {"input_audio_format": "g711_ulaw"}})
        _error(ws, "unsupported_audio_format")
        send(ws, {"type": "session.update", "session": {**SESSION, "audio": {"input": {
            "transcription": {"model": "no-such-model"}}}}})
        _error(ws, "model_not_found")
        german = {**SESSION, "audio": {"input": {**SESSION["audio"]["input"],
                                                 "transcription": {"model": "whisper-1", "language": "de"}}}}
        send(ws, {"type": "session.update", "session": german})  # tiny.en is English-only
        assert _error(ws, "unsupported_language")["param"] == "language"
        assert _sessions(scribe_api).keys() == before.keys()  # nothing was opened by any of it

        send(ws, {"type": "session.update", "session": SESSION})
        assert recv(ws)["type"] == "session.updated"
        send(ws, {"type": "input_audio_buffer.commit"})
        _error(ws, "input_audio_buffer_commit_empty")
        send(ws, {"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"})
        _error(ws, "invalid_base64")
        send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()})
        _error(ws, "invalid_audio_format")
        for piece in pieces(pcm)[:40]:
            send(ws, {"type": "input_audio_buffer.append", "audio": piece})
        send(ws, {"type": "input_audio_buffer.clear"})
        recv_until(ws, "input_audio_buffer.cleared")
        for piece in pieces(pcm)[:60]:  # the socket still works after every error
            send(ws, {"type": "input_audio_buffer.append", "audio": piece})
        send(ws, {"type": "input_audio_buffer.commit"})
        committed = recv_until(ws, "input_audio_buffer.committed")[-1]
        done = recv_until(ws, "conversation.item.input_audio_transcription.completed")[-1]
        assert done["item_id"] == committed["item_id"] and done["transcript"]
    after = _sessions(scribe_api)
    (new,) = set(after) - set(before)
    for sid, row in before.items():
        assert after[sid]["chunks"] == row["chunks"]
    assert eventually(lambda: _sessions(scribe_api)[new]["chunks"]["done"] == 1, timeout=60, poll=0.3)
    chunk = scribe_api.get(f"/sessions/{new}").json()["chunk_list"][0]
    assert chunk["start_ms"] == 0 and 5900 <= chunk["end_ms"] <= 6100  # the cleared 4 s never stored


# -- access and limits -------------------------------------------------------------------------------
def test_a_wrong_token_gets_an_error_event_and_a_policy_close(app):
    with socket(app, token="not-the-token") as ws:
        _error(ws, "invalid_api_key")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008


def test_a_browser_passes_the_token_as_a_subprotocol_or_in_the_query(app):
    offered = ["realtime", f"openai-insecure-api-key.{TOKEN}"]
    with connect(ws_url(app), subprotocols=offered, open_timeout=30) as ws:
        assert ws.subprotocol == "realtime" and recv(ws)["type"] == "session.created"
    with connect(ws_url(app, f"intent=transcription&api_key={TOKEN}"), open_timeout=30) as ws:
        assert recv(ws)["type"] == "session.created"


def test_past_the_live_session_limit_a_socket_is_refused_and_the_others_go_on(app, spoken):
    pcm, _ = spoken
    first, second = socket(app), socket(app)
    try:
        configure(first)
        configure(second)
        with socket(app) as third:
            _error(third, "session_limit")
            with pytest.raises(ConnectionClosed) as closed:
                third.recv(timeout=10)
        assert closed.value.rcvd.code == 1013
        for piece in pieces(pcm)[:30]:
            send(first, {"type": "input_audio_buffer.append", "audio": piece})
        send(first, {"type": "input_audio_buffer.commit"})
        recv_until(first, "conversation.item.input_audio_transcription.completed")
    finally:
        first.close()
        second.close()
