from pathlib import Path

import pytest

from scribe.chunking import LIVE_POLICY_NAMES, POLICY_NAMES
from scribe.config import Settings
from scribe.errors import SettingsError


def test_defaults_need_no_environment():
    s = Settings.from_env({})
    assert (s.backend, s.chunk_seconds, s.chunk_policy, s.whisper_model) == ("local", 15.0, "pause", "base")
    assert s.final_model == "base" and s.language == "en"
    assert s.db == Path("data") / "scribe.duckdb"
    assert s.audio_dir == Path("data") / "audio"


def test_environment_overrides_defaults():
    s = Settings.from_env({"SCRIBE_DATA_DIR": "/tmp/x", "SCRIBE_CHUNK_SECONDS": "8",
                           "SCRIBE_CHUNK_POLICY": "FIXED", "SCRIBE_MAX_CONCURRENCY": "3",
                           "SCRIBE_ICE_SERVERS": "stun:a.example:3478, turn:b.example",
                           "SCRIBE_FINAL_PASS": "off", "SCRIBE_LOG_LEVEL": "debug"})
    assert s.db == Path("/tmp/x/scribe.duckdb")
    assert (s.chunk_seconds, s.chunk_policy, s.max_concurrency) == (8.0, "fixed", 3)
    assert s.ice_servers == ("stun:a.example:3478", "turn:b.example")
    assert s.final_pass is False and s.log_level == "DEBUG"


def test_explicit_db_wins_over_data_dir():
    assert Settings.from_env({"SCRIBE_DB": "/tmp/a.duckdb"}).db == Path("/tmp/a.duckdb")


@pytest.mark.parametrize("var,value", [
    ("SCRIBE_CHUNK_SECONDS", "fast"), ("SCRIBE_CHUNK_SECONDS", "0"), ("SCRIBE_BACKEND", "whisperx"),
    ("SCRIBE_CHUNK_POLICY", "random"), ("SCRIBE_MAX_CONCURRENCY", "-1"), ("SCRIBE_FINAL_PASS", "maybe"),
    ("SCRIBE_GEMINI_RPM", "0"), ("SCRIBE_LOG_LEVEL", "LOUD"),
    ("SCRIBE_LANGUAGE", "english"),
])
def test_bad_values_name_the_variable(var, value):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: value})


def test_gemini_backend_needs_a_key_and_never_shows_it():
    with pytest.raises(SettingsError, match="GEMINI_API_KEY"):
        Settings.from_env({"SCRIBE_BACKEND": "gemini"})
    s = Settings.from_env({"SCRIBE_BACKEND": "gemini", "GEMINI_API_KEY": "sk-secret-123"})
    assert "sk-secret-123" not in repr(s)


def test_string_paths_become_paths():
    s = Settings.from_env({}, data_dir="/tmp/scribe-x", db_path="/tmp/scribe-x/a.duckdb")
    assert s.audio_dir == Path("/tmp/scribe-x/audio") and s.db == Path("/tmp/scribe-x/a.duckdb")


def test_chunk_policy_settings_are_the_live_policy_names():
    for name in POLICY_NAMES:
        if name in LIVE_POLICY_NAMES:
            assert Settings.from_env({"SCRIBE_CHUNK_POLICY": name}).chunk_policy == name
        else:  # `whole` never cuts a live stream; `quiet` is for comparison in the lab
            with pytest.raises(SettingsError, match="SCRIBE_CHUNK_POLICY"):
                Settings.from_env({"SCRIBE_CHUNK_POLICY": name})


def test_every_check_in_validate_names_a_setting_with_a_variable():
    """validate() names fields; their variables come from ENV_VARS, the one place they are written."""
    import ast
    import inspect
    import textwrap

    from scribe import config

    tree = ast.parse(textwrap.dedent(inspect.getsource(config.Settings.validate)))
    checks = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                  and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "checks")
    assert isinstance(checks, ast.List)
    names = [t.elts[1].value for t in checks.elts if isinstance(t, ast.Tuple) and isinstance(t.elts[1], ast.Constant)]
    assert len(names) == len(checks.elts) > 20
    for name in names:
        assert all(part in config.ENV_VARS for part in name.split("/")), name
