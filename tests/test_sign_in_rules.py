"""Who may enter, who administers, and when the server refuses to start.

The rules on their own (scribe.identity), and a real `streamlit run app.py` told to listen on
this machine's host name (a name, not a loopback literal, so it counts as the network; it
resolves to a loopback address here, so nothing is exposed while the test runs)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from scribe_app import ROOT, free_port

from scribe.config import Settings
from scribe.errors import SettingsError
from scribe.identity import EntryRules, parse_list
from scribe.server import startup_refusal


def test_admin_list_ignores_case_and_odd_spacing():
    settings = Settings.from_env({"SCRIBE_ADMINS": "  Ada@Example.COM ,, bob@example.com;  cy@x.org ",
                                  "SCRIBE_ALLOWED_EMAIL_DOMAINS": " @Example.com  other.org"})
    assert settings.admins == {"ada@example.com", "bob@example.com", "cy@x.org"}
    assert settings.allowed_email_domains == {"example.com", "other.org"}
    person = settings.entry_rules.person("https://idp", "42", " ADA@example.com ", "Ada")
    assert person.is_admin and person.email == "ada@example.com" and person.user_id == "https://idp|42"


def test_an_admin_list_of_non_emails_is_a_clear_settings_error():
    with pytest.raises(SettingsError, match="SCRIBE_ADMINS"):
        Settings.from_env({"SCRIBE_ADMINS": "ada, bob"})


@pytest.mark.parametrize("email, admitted", [
    ("ana@example.com", True), ("ANA@EXAMPLE.COM", True), ("ana@example.com.evil.org", False),
    ("ana@sub.example.com", False), ("guest@gmail.com", False), ("listed@gmail.com", True), ("", False),
])
def test_only_allowed_domains_and_emails_enter(email, admitted):
    rules = EntryRules(parse_list("example.com"), parse_list("Listed@gmail.com"))
    assert rules.admits(email) is admitted
    assert (rules.refusal(email) is None) is admitted


def test_without_lists_the_provider_decides():
    assert EntryRules().admits("anyone@anywhere.org") and not EntryRules().admits("")


@pytest.mark.parametrize("address, sign_in, anonymous, refused", [
    ("127.0.0.1", False, False, False), ("localhost", False, False, False), ("::1", False, False, False),
    ("0.0.0.0", False, False, True), (None, False, False, True), ("10.0.0.5", False, False, True),
    ("0.0.0.0", True, False, False), ("0.0.0.0", False, True, False),
])
def test_startup_refusal(address, sign_in, anonymous, refused):
    assert (startup_refusal(address, sign_in, anonymous) is not None) is refused


def test_server_on_a_network_name_without_sign_in_exits_with_one_line(tmp_path):
    name = socket.gethostname()
    try:
        resolved = socket.gethostbyname(name)
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if not resolved.startswith("127."):
        pytest.skip("this machine's host name is not a loopback address: binding it would expose the test")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "SCRIBE_DATA_DIR": str(tmp_path / "data"), "SCRIBE_BACKEND": "stub"}
    done = subprocess.run([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                           "--server.address", name, "--server.port", str(free_port())],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    refusal = [line for line in done.stderr.splitlines() if line.strip()]
    assert refusal == [startup_refusal(name, False, False)]
    assert "[auth]" in refusal[0] and "SCRIBE_ALLOW_ANONYMOUS=true" in refusal[0]
    assert not (tmp_path / "data").exists(), "nothing may be created before the refusal"
