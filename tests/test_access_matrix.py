"""The access rule over every API route, generated from the route table.

Team mode (sign-in configured): each route is called by an owner, a reader the session is
shared with, a team member (on a team-visible and on a private session), a stranger, an
administrator, the service token, no token, a revoked, an unknown and a malformed token,
against a real Runtime (stub backend) and a real database. Every route must have a rule in
RULES, so a route added without deciding who may call it fails `test_every_route_has_a_rule`.
An unreadable session must answer exactly like a missing one (same status, same body).
"""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from seed_sessions import seed_session
from starlette.testclient import TestClient

from scribe import accounts
from scribe.api import ApiContext, create_api
from scribe.config import Settings
from scribe.identity import Principal
from scribe.runtime import Runtime
from scribe.summaries import summarizers_open_to

SERVICE_TOKEN = "service-token-for-the-matrix-0123"
ISSUER = "http://127.0.0.1:1/"
PEOPLE = {"owner": "olga@example.com", "reader": "rita@example.com", "member": "max@example.com",
          "stranger": "sam@example.com", "admin": "ada@example.com"}
SECRET_WORD = "zanzibar"

# How each route is ruled (method, path) -> kind:
#   any: every caller with a valid token; admin: administrators only;
#   read: the session's readers (404 to everyone else); write: owner and admins (403 to readers,
#   404 to everyone who cannot read it).
RULES = {
    ("GET", "/docs"): "any", ("GET", "/docs/oauth2-redirect"): "any", ("GET", "/openapi.json"): "any",
    ("GET", "/health"): "any", ("GET", "/me"): "any", ("GET", "/sessions"): "any",
    ("GET", "/search"): "any", ("GET", "/tokens"): "any", ("POST", "/tokens"): "any",
    ("DELETE", "/tokens/{token_id}"): "any", ("POST", "/lab/runs"): "any", ("POST", "/transcriptions"): "any",
    ("GET", "/audit"): "admin", ("PUT", "/sessions/{session_id}/owner"): "admin",
    ("GET", "/sessions/{session_id}"): "read", ("GET", "/sessions/{session_id}/transcript"): "read",
    ("GET", "/sessions/{session_id}/audio"): "read", ("GET", "/sessions/{session_id}/summary"): "read",
    ("GET", "/sessions/{session_id}/sharing"): "read",
    ("PATCH", "/sessions/{session_id}"): "write", ("DELETE", "/sessions/{session_id}"): "write",
    ("POST", "/sessions/{session_id}/retry"): "write", ("POST", "/sessions/{session_id}/summary"): "write",
    ("PUT", "/sessions/{session_id}/sharing"): "write",
    ("GET", "/sessions/{session_id}/speakers"): "read",
    ("PATCH", "/sessions/{session_id}/speakers/{speaker_id}"): "write-work",
    ("POST", "/sessions/{session_id}/speakers/merge"): "write-work",
    ("POST", "/sessions/{session_id}/speakers/{speaker_id}/split"): "write-work",
    ("POST", "/sessions/{session_id}/speakers/relabel"): "write-work",
    ("POST", "/sessions/{session_id}/speakers/{speaker_id}/voice"): "write-work",
    ("DELETE", "/sessions/{session_id}/speakers/{speaker_id}/voice"): "write-work",
    # The team's memory (voices, vocabulary) belongs to the team: every signed-in person.
    ("GET", "/voices"): "any", ("POST", "/voices/enroll"): "any-work", ("PATCH", "/voices/{profile_id}"): "any-work",
    ("DELETE", "/voices/{profile_id}"): "any-work", ("GET", "/vocabulary"): "any",
    ("POST", "/vocabulary"): "any-work", ("DELETE", "/vocabulary/{term}"): "any-work",
}
"""write-work: a write whose work may fail on its own (a voice model, too few segments to split);
an authorised caller must get past the access rule: no 401, no 403, not the not-found answer."""
CALLERS = ["owner", "reader", "member", "member-private", "stranger", "admin", "service",
           "none", "revoked", "unknown", "malformed"]


def _wav_bytes(seconds: float = 1.0) -> bytes:
    t = np.arange(int(16_000 * seconds)) / 16_000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000), w.writeframes(pcm.tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("matrix") / "data"
    settings = Settings.from_env({"SCRIBE_BACKEND": "stub", "SCRIBE_SKIP_SILENCE": "false",
                                  "SCRIBE_STUB_LATENCY": "0-0", "SCRIBE_DIARIZATION": "false",
                                  "SCRIBE_ADMINS": " ADA@example.com ", "SCRIBE_API_TOKEN": SERVICE_TOKEN,
                                  "SCRIBE_ALLOWED_EMAIL_DOMAINS": "example.com"}, data_dir=data)
    rt = Runtime.build(settings)
    rules = settings.entry_rules
    people = {role: rules.person(ISSUER, role, email, role.title()) for role, email in PEOPLE.items()}
    for person in people.values():
        rt.storage.record_user(person)
    tokens = {role: accounts.create_token(rt.storage, person, "matrix").secret for role, person in people.items()}
    revoked = accounts.create_token(rt.storage, people["reader"], "old")
    accounts.revoke_token(rt.storage, people["reader"], revoked.row.id)
    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
    headers.update({"member-private": headers["member"], "service": {"Authorization": f"Bearer {SERVICE_TOKEN}"},
                    "none": {}, "revoked": {"Authorization": f"Bearer {revoked.secret}"},
                    "unknown": {"Authorization": "Bearer scribe_" + "A" * 43},
                    "malformed": {"Authorization": "Bearer not a token"}})
    api = create_api(ApiContext(runtime=lambda: rt, runtime_for=lambda b, m: rt, token=lambda: SERVICE_TOKEN,
                                team_mode=lambda: True))
    with TestClient(api, base_url="http://127.0.0.1") as client:
        yield {"rt": rt, "people": people, "headers": headers, "client": client, "data": data}
    rt.close()


def _session(world, visibility: str, word: str = SECRET_WORD) -> str:
    """A fresh session of the owner's: shared with the reader, team-visible, or private."""
    rt, people = world["rt"], world["people"]
    session = seed_session(rt.storage, rt.settings.audio_dir, [("A", f"the {word} budget is final"),
                                                               ("B", "we ship in May")],
                           title=f"Secret plan {visibility}", created_at=1.7e9)
    rt.storage.update_session(session.id, owner_id=people["owner"].user_id)
    owner = people["owner"]
    if visibility == "team":
        accounts.set_visibility(rt.storage, owner, session.id, "team")
    elif visibility == "shared":
        accounts.share_with(rt.storage, owner, session.id, people["reader"].email)
    return session.id


def _request(world, method: str, path: str, caller: str, session_id: str) -> tuple[int, dict | bytes]:
    client, headers = world["client"], world["headers"][caller]
    url = "/" + path.lstrip("/").replace("{session_id}", session_id).replace("{speaker_id}", "1") \
        .replace("{profile_id}", "nobody").replace("{term}", "nothing")
    kwargs: dict = {}
    if "{token_id}" in url:  # the caller's own token when they have one
        url = url.replace("{token_id}", _own_token(world, caller))
    if (method, path) == ("PATCH", "/sessions/{session_id}"):
        kwargs["json"] = {"title": "Renamed"}
    elif (method, path) == ("POST", "/sessions/{session_id}/summary"):
        kwargs["json"] = {"backend": "local"}
    elif (method, path) == ("PUT", "/sessions/{session_id}/sharing"):
        kwargs["json"] = {"visibility": "team"}
    elif (method, path) == ("PUT", "/sessions/{session_id}/owner"):
        kwargs["json"] = {"email": PEOPLE["reader"]}
    elif method in ("PATCH", "POST") and path in ("/sessions/{session_id}/speakers/{speaker_id}",
                                                  "/sessions/{session_id}/speakers/{speaker_id}/voice",
                                                  "/voices/{profile_id}"):
        kwargs["json"] = {"name": "Ana"}
    elif (method, path) == ("POST", "/vocabulary"):
        kwargs["json"] = {"terms": ["DuckDB"]}
    elif path.endswith("/speakers/merge"):
        kwargs["json"] = {"keep": 1, "drop": 2}
    elif path.endswith("/speakers/relabel"):
        kwargs["json"] = {"speakers": 2}
    elif (method, path) == ("POST", "/tokens"):
        kwargs["json"] = {"name": "another"}
    elif (method, path) == ("POST", "/lab/runs"):
        kwargs["json"] = {}
    elif (method, path) == ("POST", "/transcriptions"):
        kwargs["files"] = {"file": ("tone.wav", _wav_bytes(), "audio/wav")}
    elif (method, path) == ("GET", "/search"):
        kwargs["params"] = {"q": SECRET_WORD}
    elif (method, path) == ("DELETE", "/sessions/{session_id}"):
        kwargs["params"] = {"force": "true"}
    response = client.request(method, url, headers=headers, **kwargs)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.content


def test_health_gives_the_memory_figures_to_administrators_only(world):
    client, headers = world["client"], world["headers"]
    assert client.get("/health", headers=headers["member"]).json()["memory"] is None
    assert client.get("/health", headers=headers["admin"]).json()["memory"]["rss_mb"] > 0


def _own_token(world, caller: str) -> str:
    role = "member" if caller == "member-private" else caller
    person = world["people"].get(role)
    if person is None:
        return "0" * 12
    new = accounts.create_token(world["rt"].storage, person, "to revoke")
    return new.row.id


def _expected(kind: str, caller: str, method: str, path: str) -> set[int]:
    if caller in ("none", "revoked", "unknown", "malformed"):
        return {401}
    if kind == "any":
        if (method, path) == ("POST", "/lab/runs"):
            return {400}  # authorised; the empty run is then refused as incomplete
        if (method, path) == ("DELETE", "/tokens/{token_id}") and caller == "service":
            return {400}  # the service principal has no personal tokens
        return {200, 201, 202}
    admin = caller in ("admin", "service")
    if kind == "admin":
        return {200} if admin else {403}
    can_read = caller in ("owner", "reader", "member", "admin", "service")
    if not can_read:
        return {404}
    if kind == "read":
        if path.endswith("/summary"):
            return {404}  # readable, and it has no summary yet: the same body for everyone (checked below)
        return {200}
    return {200, 201} if caller in ("owner", "admin", "service") else {403}


def route_table() -> set[tuple[str, str]]:
    """(method, path) of every route the API app serves, included routers unfolded."""
    api = create_api(ApiContext(runtime=lambda: None, runtime_for=lambda b, m: None, token=lambda: None))
    found, todo = set(), list(api.routes)
    while todo:
        route = todo.pop()
        if (router := getattr(route, "original_router", None)) is not None:  # an included router
            todo.extend(router.routes)
        elif getattr(route, "methods", None):
            found.update((method, route.path) for method in route.methods - {"HEAD"})
    return found


def _cases():
    for method, path in sorted(route_table()):
        for caller in CALLERS:
            yield method, path, caller


def test_every_route_has_a_rule():
    routes = route_table()
    assert routes - set(RULES) == set(), "a route without an access rule: add it to RULES"
    assert set(RULES) - routes == set(), "a rule for a route that no longer exists"


@pytest.mark.parametrize("method, path, caller", list(_cases()))
def test_access_matrix(world, method, path, caller):
    kind = RULES[(method, path)]
    visibility = "private" if caller == "member-private" else ("team" if caller == "member" else "shared")
    session_id = _session(world, visibility)
    before = world["rt"].storage.get_session(session_id)
    status, body = _request(world, method, path, caller, session_id)
    if kind == "any-work" and caller not in ("none", "revoked", "unknown", "malformed"):
        assert status not in (401, 403), (method, path, caller, status, body)
        return
    if kind == "write-work" and caller in ("owner", "admin", "service"):
        assert status not in (401, 403) and body != {"error": f"no session {session_id!r}"}, \
            (method, path, caller, status, body)
        return
    assert status in _expected(kind.removesuffix("-work"), caller, method, path), (method, path, caller, status, body)
    if status == 404 and kind in ("read", "write", "write-work") and not path.endswith("/summary"):
        # Exactly the answer of a session that does not exist: no title, no hint.
        missing = "20000101-000000-000000"
        missing_status, missing_body = _request(world, method, path, caller, missing)
        assert body == {"error": f"no session {session_id!r}"}
        assert (missing_status, missing_body) == (404, {"error": f"no session {missing!r}"})
    if status >= 400 and kind in ("read", "write", "write-work"):
        assert world["rt"].storage.find_session(session_id) == before, "a refused call changed the session"
    if kind == "any" and path == "/search" and status == 200:
        ids = {hit["session_id"] for hit in body["hits"]}
        assert (session_id in ids) == (caller in ("owner", "reader", "member", "admin", "service"))
    if kind == "any" and path == "/sessions" and status == 200:
        ids = {s["id"] for s in body["sessions"]}
        assert (session_id in ids) == (caller in ("owner", "reader", "member", "admin", "service"))


def test_stranger_sees_no_count_snippet_or_title(world):
    """Search and list totals count only readable sessions; nothing of the session leaks."""
    session_id = _session(world, "shared", word="quokka")
    client, headers = world["client"], world["headers"]["stranger"]
    found = client.get("/search", params={"q": "quokka"}, headers=headers).json()
    assert found["total"] == 0 and found["hits"] == []
    listed = client.get("/sessions", params={"limit": 10_000}, headers=headers).json()
    assert all(s["id"] != session_id for s in listed["sessions"])
    assert all(s["owner_id"] == world["people"]["stranger"].user_id or s["visibility"] == "team"
               for s in listed["sessions"])
    assert listed["total"] == len(listed["sessions"])
    direct = client.get(f"/sessions/{session_id}/transcript", headers=headers)
    assert direct.status_code == 404 and "Secret" not in direct.text


def test_tokens_are_stored_as_hashes_and_keep_last_use(world):
    rt, person = world["rt"], world["people"]["owner"]
    new = accounts.create_token(rt.storage, person, "laptop")
    stored = rt.storage.cursor().execute("SELECT token_hash FROM api_tokens WHERE id = ?", [new.row.id]).fetchone()[0]
    assert new.secret not in stored and stored == accounts.token_hash(new.secret)
    assert world["client"].get("/me", headers={"Authorization": f"Bearer {new.secret}"}).json()["email"] == person.email
    used = [t for t in rt.storage.list_tokens(person.user_id) if t.id == new.row.id][0]
    assert used.last_used_at is not None


def test_sharing_with_an_unknown_email_changes_nothing(world):
    session_id = _session(world, "shared")
    client, headers = world["client"], world["headers"]["owner"]
    before = client.get(f"/sessions/{session_id}/sharing", headers=headers).json()
    answer = client.put(f"/sessions/{session_id}/sharing", headers=headers,
                        json={"add": ["nobody@example.com"], "visibility": "team"})
    assert answer.status_code == 400 and "no one has signed in" in answer.json()["error"]
    assert client.get(f"/sessions/{session_id}/sharing", headers=headers).json() == before


def test_audit_log_records_who_did_what(world):
    session_id = _session(world, "shared")
    client = world["client"]
    client.delete(f"/sessions/{session_id}", params={"force": "true"}, headers=world["headers"]["owner"])
    events = client.get("/audit", params={"limit": 10_000}, headers=world["headers"]["admin"]).json()["events"]
    actions = {(e["actor"], e["action"], e["target"]) for e in events}
    assert (PEOPLE["owner"], "delete", session_id) in actions
    assert (PEOPLE["owner"], "share", session_id) in actions
    assert any(a == "token revoke" for _, a, _ in actions)


def test_a_person_outside_the_allowed_domains_loses_their_token(world):
    rt = world["rt"]
    outsider = Principal(f"{ISSUER}|eve", email="eve@elsewhere.org", signed_in=True)
    rt.storage.record_user(outsider)
    token = accounts.create_token(rt.storage, outsider, "old").secret
    answer = world["client"].get("/sessions", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "no longer" in answer.json()["error"]


def test_a_person_may_not_choose_a_backend_the_admins_did_not_allow(world):
    client = world["client"]
    answer = client.post("/transcriptions", headers=world["headers"]["stranger"],
                         files={"file": ("tone.wav", _wav_bytes(), "audio/wav")}, data={"backend": "gemini"})
    assert answer.status_code == 403 and "not open to you" in answer.json()["error"]


def test_summarizers_follow_one_rule_the_offline_one_open_to_every_owner(world, monkeypatch):
    """With only the stub backend open to people, the owner may still run the offline summarizer
    (nothing sent out, nothing billed) but not Gemini (billed to the server's key); an admin may
    run both. The Summary page offers the same list (tests/test_summary_page.py)."""
    from dataclasses import replace

    rt, client, headers = world["rt"], world["client"], world["headers"]
    monkeypatch.setattr(rt, "settings", replace(rt.settings, user_backends=("stub",)))
    session_id = _session(world, "private")
    offline = client.post(f"/sessions/{session_id}/summary", headers=headers["owner"], json={"backend": "local"})
    assert offline.status_code == 201, offline.json()
    assert offline.json()["version"] == 1
    billed = client.post(f"/sessions/{session_id}/summary", headers=headers["owner"], json={"backend": "gemini"})
    assert billed.status_code == 403 and "gemini summarizer is not open to you" in billed.json()["error"]
    assert len(rt.storage.list_summaries(session_id)) == 1  # the refusal stored nothing
    assert summarizers_open_to(world["people"]["owner"], rt.settings) == ("local",)
    assert summarizers_open_to(world["people"]["admin"], rt.settings) == ("local", "gemini")
