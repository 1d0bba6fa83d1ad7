"""The Gemini key never reaches a log line or the database, even when something echoes it."""

from __future__ import annotations

import logging
import subprocess
import sys

import fake_gemini as fg
import pytest
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)
from test_cli import ROOT

from scribe import gemini_client as gc
from scribe.errors import TranscriptionError
from scribe.redact import redact_secrets

KEY = fg.DEFAULT_KEY


@pytest.mark.parametrize("where", [0, 70, 75])
def test_an_answer_echoing_the_key_is_quoted_without_it(fake_gemini, where):
    fake_gemini.script(fg.text_reply("x" * where + f" you sent {KEY} to me, not JSON"))
    client = gc.client_for(KEY, base_url=fake_gemini.base_url, api_version="v1beta", timeout_s=5)
    with pytest.raises(TranscriptionError) as info:
        gc.generate_json(client, model="gemini-2.5-flash", contents=["hi"], schema={"type": "OBJECT"},
                         api_key=KEY)
    message = str(info.value)
    assert "not JSON" in message and KEY not in message
    assert "test-key" not in message  # no prefix of it survives the shortening either


def test_key_shaped_text_is_redacted_without_knowing_the_key():
    key_shaped = "AIza" + "Sy" + "A1234567890abcdefghijklmnopqrstu"  # built, so no key-like literal is committed
    assert "AIzaSy" not in redact_secrets(f"echo {key_shaped}")
    assert redact_secrets("x-goog-api-key: sk-abcdefgh12345") == "x-goog-api-key: [redacted]"
    assert redact_secrets("GET /v1/models?key=abcdef123456&alt=json") == \
        "GET /v1/models?key=[redacted]&alt=json"
    assert redact_secrets("redis://u:hunter2secret@host:6379/0") == "redis://u:[redacted]@host:6379/0"
    assert redact_secrets("the monkey=bananasplit keyboard") == "the monkey=bananasplit keyboard"


DEBUG_RUN = f"""
import logging
from scribe.runtime import configure_logging
configure_logging("DEBUG")
headers = [(b"x-goog-api-key", b"{KEY}"), (b"content-type", b"application/json")]
logging.getLogger("httpcore2.http11").debug("send_request_headers.started headers=%r", headers)
logging.getLogger("httpx").debug("request headers %r", dict(headers))
logging.getLogger("scribe.gemini").debug("calling with x-goog-api-key: {KEY}")
logging.getLogger("scribe.pipeline").debug("scribe debug lines still show")
"""


def test_debug_logging_never_writes_header_values():
    out = subprocess.run([sys.executable, "-c", DEBUG_RUN], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert KEY not in out.stderr
    assert "scribe debug lines still show" in out.stderr
    assert "x-goog-api-key: [redacted]" in out.stderr


def test_the_filter_redacts_exception_text_too(caplog):
    from scribe.redact import RedactingFilter

    record = logging.LogRecord("scribe", logging.ERROR, __file__, 1, "failed: %s", (f"key={KEY}",), None)
    assert RedactingFilter().filter(record)
    assert KEY not in record.getMessage()
