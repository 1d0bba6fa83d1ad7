"""`python -m scribe export | search | summarize | delete` against a seeded data folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import srt
from fake_gemini import DEFAULT_KEY, fake_gemini, fake_gemini_factory, forbidden, json_reply  # noqa: F401
from pagekit import ROOT, TRICKY, seed_demo

from scribe.cli import main


@pytest.fixture
def demo(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    ids = seed_demo(data_dir)
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(data_dir))
    for var in ("SCRIBE_DB", "SCRIBE_BACKEND", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return data_dir, ids


def test_export_writes_each_format(demo, capsys, tmp_path):
    _data_dir, ids = demo
    assert main(["export", ids["tricky"], "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["segments"][0]["text"] == TRICKY and payload["segments"][0]["start"] == 0.2
    out = tmp_path / "plan.srt"
    assert main(["export", ids["plan"], "--format", "srt", "--output", str(out)]) == 0
    assert len(list(srt.parse(out.read_text()))) == 4


def test_export_prefers_final_and_can_ask_for_live(demo, capsys):
    _data_dir, ids = demo
    main(["export", ids["final"]])
    assert "Final words" in capsys.readouterr().out
    main(["export", ids["final"], "--transcript", "live"])
    assert "live words" in capsys.readouterr().out
    assert main(["export", ids["plan"], "--transcript", "final"]) == 2
    assert "no final transcript" in capsys.readouterr().err


def test_search_prints_hits_and_json(demo, capsys):
    _data_dir, ids = demo
    assert main(["search", '"launch date"']) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"{ids['plan']}  [00:05]  Bob: ")
    assert main(["search", "MIGRATION", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total"] == 1 and payload["hits"][0]["transcript"] == "final"
    assert main(["search", "nothing-like-this"]) == 1
    assert main(["search", '""']) == 2 and "empty" in capsys.readouterr().err


def test_summarize_stores_versions(demo, capsys):
    _data_dir, ids = demo
    assert main(["summarize", ids["plan"], "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["version"] == 1 and first["backend"] == "local"
    assert [a["owner"] for a in first["action_items"]] == ["Bob"]
    assert main(["summarize", ids["plan"]]) == 0
    text = capsys.readouterr().out
    assert "(version 2, local" in text and "[00:10] Bob will send" in text and "(owner: Bob)" in text
    assert main(["summarize", ids["plan"], "--backend", "gemini"]) == 2
    assert "GEMINI_API_KEY" in capsys.readouterr().err


def test_delete_removes_rows_and_audio_of_that_session_only(demo, capsys):
    data_dir, ids = demo
    assert main(["delete", ids["plan"]]) == 0
    assert "4 segments, 4 chunks, 0 summaries, 4 audio files" in capsys.readouterr().out
    assert not (data_dir / "audio" / ids["plan"]).exists()
    assert (data_dir / "audio" / ids["tricky"]).is_dir()
    assert main(["export", ids["plan"]]) == 2 and "no session" in capsys.readouterr().err
    assert main(["export", ids["tricky"]]) == 0
    # No process can be recording it: this command holds the database file. Opening it
    # marked the session interrupted, so it can be deleted without --force.
    assert main(["delete", ids["recording"]]) == 0


def test_module_entry_point_runs(demo):
    data_dir, ids = demo
    done = subprocess.run([sys.executable, "-m", "scribe", "search", "budget"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"SCRIBE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert ids["plan"] in done.stdout


def test_summarize_with_gemini_through_the_fake_server(demo, capsys, monkeypatch, fake_gemini):
    _data_dir, ids = demo
    monkeypatch.setenv("GEMINI_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("SCRIBE_GEMINI_BASE_URL", fake_gemini.base_url)
    fake_gemini.script(json_reply({"title": "T", "overview": "O.", "key_points": [], "decisions": [],
                                   "action_items": [{"time": "0:10", "text": "Send it.", "owner": "Bob"}]}),
                       forbidden())
    assert main(["summarize", ids["plan"], "--backend", "gemini", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["backend"], out["action_items"][0]["start_ms"]) == ("gemini", 10_200)
    assert main(["summarize", ids["plan"], "--backend", "gemini"]) == 2
    err = capsys.readouterr().err
    assert "Gemini rejected the API key" in err and DEFAULT_KEY not in err
