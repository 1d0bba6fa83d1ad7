"""Whether a request may use the API at all, decided from its peer and headers alone (before any
body is read): the cross-site refusal, the service token, and the this-machine rule of local mode.
`scribe.api_auth` builds the caller on top of it; `scribe.api` answers with `ApiError`.
"""

from __future__ import annotations

import hmac
from typing import Mapping

from scribe.guard import host_of, is_loopback

_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class ApiError(Exception):
    """An error answer: `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def access_error(client_host: str | None, headers: Mapping[str, str], token: str | None) -> ApiError | None:
    """Why a request may not use the API, or None when it may.

    A browser's no-cors request from another site (Sec-Fetch-Site other than same-origin, not a
    navigation) is refused whatever else it carries. With a token: a matching
    `Authorization: Bearer` (compared in constant time), else 401. Without one: only this
    machine, else 403. "This machine" means a loopback peer that is not relaying someone else
    (no forwarding header naming another address), asked for by a loopback host name (a
    DNS-rebinding page has its own name in Host) and not sent by another web page (Origin, when
    present, is this server itself).
    """
    if (error := cross_site_error(headers)) is not None:
        return error
    if token:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return ApiError(401, "missing or wrong API token: send Authorization: Bearer <SCRIBE_API_TOKEN>")
    if _from_this_machine(client_host, headers):
        return None
    return ApiError(403, "without SCRIBE_API_TOKEN the API only serves this machine; set SCRIBE_API_TOKEN "
                         "on the app and send Authorization: Bearer <token>")


def cross_site_error(headers: Mapping[str, str]) -> ApiError | None:
    """A browser's no-cors request from another site (Sec-Fetch-Site other than same-origin,
    not a navigation) is refused whatever else it carries."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none") \
            and headers.get("sec-fetch-mode") != "navigate":
        return ApiError(403, "the API does not answer requests from other sites' pages")
    return None


def _from_this_machine(client_host: str | None, headers: Mapping[str, str]) -> bool:
    if not is_loopback(client_host):
        return False
    for name in _FORWARDING_HEADERS:
        if name in headers and not all(is_loopback(a) for a in _forwarded_addresses(headers[name])):
            return False
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1].rstrip("/").lower() != host.lower():
        return False  # another port of localhost is another site, with its own pages
    return is_loopback(host_of(host))


def _forwarded_addresses(value: str) -> list[str]:
    """Addresses named by X-Forwarded-For / X-Real-IP (`a, b`) or Forwarded (`for=a;proto=..`)."""
    found = []
    for part in value.split(","):
        for item in part.split(";"):
            key, sep, val = item.strip().partition("=")
            if sep and key.lower() != "for":
                continue
            raw = (val if sep else key).strip().strip('"')
            found.append(host_of(raw) if raw.startswith("[") or raw.count(":") == 1 else raw)
    return [a for a in found if a]
