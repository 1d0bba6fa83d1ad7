"""Secrets out of text that leaves the process: log lines and stored error messages.

The Gemini key is never put in a message on purpose; this catches what arrives by
accident: a server or model echoing the request, an HTTP library logging headers or
a URL at DEBUG. Patterns, so no key has to be known where a line is written.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

_PATTERNS = [
    re.compile(r"AIza[0-9A-Za-z_\-]{10,}"),  # Google API keys
    re.compile(r"(?i)(\b(?:x-goog-api-key|authorization|api[_-]?key|key)\s*[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)"
               r"[^\s\"'&,;}]{8,}"),
    re.compile(r"(?i)([?&](?:key|api_key|token)=)[^&\s\"']+"),
    re.compile(r"(redis(?:s)?://[^:/@\s]*:)[^@\s]+(@)"),  # a password in a Redis URL
]


def redact_secrets(text: str) -> str:
    """`text` with anything that looks like a key, token or URL password replaced."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED +
                           (m.group(2) if (m.lastindex or 0) >= 2 else ""), text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: formats each record's message once, redacted, before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True
