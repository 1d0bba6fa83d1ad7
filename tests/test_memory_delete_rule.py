"""Team memory is team data: with sign-in, only whoever added a voice profile or a vocabulary
term, or an administrator, deletes it; anyone else gets 403 and nothing is removed. Checked
through the API and through the CLI's path over a running app's API (SCRIBE_API_URL), served
by uvicorn on loopback against a real Runtime and database."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from scribe import accounts
from scribe.api import ApiContext, create_api
from scribe.cli.main import main as cli_main
from scribe.config import Settings
from scribe.runtime import Runtime

SERVICE_TOKEN = "service-token-for-memory-rule-0123"
ISSUER = "http://127.0.0.1:1/"
PEOPLE = {"creator": "cleo@example.com", "other": "otto@example.com", "admin": "ada@example.com"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    data = tmp_path_factory.mktemp("memory-rule") / "data"
    settings = Settings.from_env({"SCRIBE_BACKEND": "stub", "SCRIBE_DIARIZATION": "false",
                                  "SCRIBE_ADMINS": "ada@example.com", "SCRIBE_API_TOKEN": SERVICE_TOKEN,
                                  "SCRIBE_ALLOWED_EMAIL_DOMAINS": "example.com"}, data_dir=data)
    rt = Runtime.build(settings)
    people = {role: settings.entry_rules.person(ISSUER, role, email, role.title()) for role, email in PEOPLE.items()}
    for person in people.values():
        rt.storage.record_user(person)
    tokens = {role: accounts.create_token(rt.storage, person, "memory").secret for role, person in people.items()}
    api = create_api(ApiContext(runtime=lambda: rt, runtime_for=lambda b, m: rt, token=lambda: SERVICE_TOKEN,
                                team_mode=lambda: True))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Mount("/api", app=api)]), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    import httpx2

    clients = {role: httpx2.Client(base_url=f"http://127.0.0.1:{port}/api",
                                   headers={"Authorization": f"Bearer {token}"}) for role, token in tokens.items()}
    yield {"rt": rt, "people": people, "tokens": tokens, "clients": clients, "url": f"http://127.0.0.1:{port}"}
    for client in clients.values():
        client.close()
    server.should_exit = True
    thread.join(timeout=10)
    rt.close()


def _terms(team) -> set[str]:
    return {t.term for t in team["rt"].storage.list_vocabulary()}


def _profile(team, name: str) -> str:
    rng = np.random.default_rng(len(name))
    embedding = rng.standard_normal(192).astype(np.float32)
    return team["rt"].storage.add_profile(name, embedding / np.linalg.norm(embedding), 12.0,
                                          created_by=team["people"]["creator"].user_id).id


def test_another_person_may_not_delete_a_term_the_creator_and_an_admin_may(team):
    http = team["clients"]
    assert http["creator"].post("/vocabulary", json={"terms": ["Zephyrix", "Quorvia"]}).status_code == 201
    refused = http["other"].delete("/vocabulary/Zephyrix")
    assert refused.status_code == 403, refused.text
    assert "only whoever added this term or an administrator" in refused.text
    assert {"Zephyrix", "Quorvia"} <= _terms(team)
    assert http["creator"].delete("/vocabulary/Zephyrix").status_code == 200
    assert http["admin"].delete("/vocabulary/Quorvia").status_code == 200
    assert not {"Zephyrix", "Quorvia"} & _terms(team)


def test_another_person_may_not_delete_a_voice_the_creator_and_an_admin_may(team):
    http, db = team["clients"], team["rt"].storage
    ana, bruno = _profile(team, "Ana Rule"), _profile(team, "Bruno Rule")
    refused = http["other"].delete(f"/voices/{ana}")
    assert refused.status_code == 403, refused.text
    assert "only whoever added this voice or an administrator" in refused.text
    assert db.get_profile(ana).embedding is not None
    assert http["creator"].delete(f"/voices/{ana}").status_code == 200
    assert http["admin"].delete(f"/voices/{bruno}").status_code == 200
    assert not {ana, bruno} & {p.id for p in db.list_profiles()}


def test_the_cli_through_the_app_keeps_the_same_rule(team, monkeypatch, capsys):
    for var in ("SCRIBE_DB", "SCRIBE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCRIBE_API_URL", team["url"])
    assert team["clients"]["creator"].post("/vocabulary", json={"terms": ["Kubeflow"]}).status_code == 201
    carla = _profile(team, "Carla Rule")

    def cli(role: str, *argv: str) -> tuple[int, str]:
        monkeypatch.setenv("SCRIBE_API_TOKEN", team["tokens"][role])
        capsys.readouterr()
        code = cli_main(list(argv))
        out = capsys.readouterr()
        return code, out.out + out.err

    code, said = cli("other", "vocabulary", "remove", "Kubeflow")
    assert code != 0 and "only whoever added this term" in said, said
    code, said = cli("other", "voices", "delete", carla)
    assert code != 0 and "only whoever added this voice" in said, said
    assert "Kubeflow" in _terms(team) and carla in {p.id for p in team["rt"].storage.list_profiles()}
    assert cli("creator", "vocabulary", "remove", "Kubeflow")[0] == 0
    assert cli("admin", "voices", "delete", carla)[0] == 0
    assert "Kubeflow" not in _terms(team) and carla not in {p.id for p in team["rt"].storage.list_profiles()}
