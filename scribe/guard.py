"""Which Host and Origin the app answers: the first check on every request, UI and API alike.

A web page elsewhere can make a team member's browser talk to Scribe in two ways. DNS rebinding:
the page's own name is pointed at this server, so its requests arrive with that name in `Host`.
Cross-origin: a page on another site (or another port of localhost) opens the UI's WebSocket or
posts to the API, and its browser adds its `Origin`. `SiteGuard` refuses both before any
Streamlit or API code runs (a WebSocket is closed before it is accepted; an HTTP request is
answered 403 before its body is read):

- Host must be an IP address (a rebinding page's Host is always its own name), `localhost`, or a
  name this server was told it has: the host of SCRIBE_PUBLIC_URL, the bind address.
- Origin, when a browser sends one, must be this server itself (same scheme-less `host:port` as
  the Host header) or SCRIBE_PUBLIC_URL's origin (a reverse proxy that rewrites Host).

Streamlit's own `server.allowedHosts` only covers the WebSocket, and its Origin check accepts any
port on localhost and then asks an outside service for this machine's address; this check runs
first, so a foreign Origin never reaches that lookup.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) or the name localhost."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    address = ip_address(host)
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def host_of(authority: str) -> str:
    """`host` from `host:port`, `[v6]:port` or a URL's authority."""
    authority = authority.split("/", 1)[0].strip()
    if authority.startswith("["):
        return authority[1:authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased (how a browser writes Origin)."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class Site:
    """The names and extra origins this server answers to (beyond loopback and IP addresses)."""

    names: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()

    @classmethod
    def from_addresses(cls, public_url: str | None, addresses: Iterable[str | None] = ()) -> "Site":
        """From SCRIBE_PUBLIC_URL and the addresses the server binds or is reached at."""
        names = {_name(host_of(a.split("://", 1)[-1])) for a in [*addresses, public_url] if a}
        origins = {origin_of(public_url)} if public_url else set()
        return cls(frozenset(n for n in names if n and ip_address(n) is None), frozenset(origins))

    def host_error(self, host_header: str | None) -> str | None:
        """Why this Host is refused, or None."""
        host = _name(host_of(host_header or ""))
        if host and (host == "localhost" or ip_address(host) is not None or host in self.names):
            return None
        return (f"Host {host_header!r} is not a name of this server; a team deployment reached by "
                "name sets SCRIBE_PUBLIC_URL to that address")

    def origin_error(self, origin: str | None, host_header: str | None) -> str | None:
        """Why a browser's Origin is refused, or None (no Origin: not sent by a web page)."""
        if origin is None:
            return None
        if origin_of(origin).split("://", 1)[-1] == (host_header or "").strip().lower():
            return None  # same origin: the page was served by this server under this name
        if origin_of(origin) in self.origins:
            return None
        return f"requests from pages on {origin!r} are refused: only this server's own pages may call it"


def _name(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


class SiteGuard:
    """ASGI middleware: refuses a foreign Host or Origin before the app sees the request.

    `site` is asked per request (the server learns its settings at start-up; until then only
    loopback and IP addresses are answered)."""

    def __init__(self, app: ASGIApp, site: Callable[[], Site]) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        site = self.site()
        problem = site.host_error(headers.get("host")) or site.origin_error(headers.get("origin"),
                                                                              headers.get("host"))
        if problem is None:
            return await self.app(scope, receive, send)
        log.warning("refused %s %s: %s", scope["type"], scope.get("path", ""), problem)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "forbidden"})
        else:
            await send_json(send, 403, {"error": problem})


def _headers(scope: Scope) -> Mapping[str, str]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        found.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return found


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A whole JSON response; `Connection: close` as the request body may be left unread."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": payload})


MEDIA_PATH = re.compile(r"(?:^|/)media/[^/]+$")
"""Streamlit's media URLs (`<base>/media/<id>`): what st.audio and st.download_button serve."""


class MediaGate:
    """ASGI middleware: a media URL answers only a caller `problem` finds nothing wrong with.

    Streamlit serves st.audio and st.download_button data at `/media/<id>`, the id a hash of the
    content, with no check of who asks; a page put it there only after the access rule, but the
    URL then works for whoever holds it, signed in or not. In team mode the server's `problem`
    refuses a request without a valid sign-in cookie (scribe.server.AppServer.media_problem)."""

    def __init__(self, app: ASGIApp, problem: Callable[[Mapping[str, str]], str | None]) -> None:
        self.app = app
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not MEDIA_PATH.search(scope.get("path", "")):
            return await self.app(scope, receive, send)
        if (problem := self.problem(_headers(scope))) is None:
            return await self.app(scope, receive, send)
        log.warning("refused %s: %s", scope.get("path", ""), problem)
        await send_json(send, 401, {"error": problem})
