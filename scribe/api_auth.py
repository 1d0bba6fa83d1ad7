"""Who calls the API: the one FastAPI dependency, `current_principal`, that every route uses.

The caller is resolved from the request, in this order:
- `Authorization: Bearer <SCRIBE_API_TOKEN>` (constant-time comparison): the service principal,
  an administrator;
- `Authorization: Bearer scribe_...`: a personal token (`scribe.accounts`), acting as its person
  under the same access rule as their pages; unknown, revoked or malformed: 401;
- no token: in team mode (sign-in configured) 401, loopback included, because a reverse proxy
  on the same host is loopback too; in local mode the machine check of `scribe.api_access.access_error`
  (SCRIBE_API_TOKEN set: 401; else only this machine, as the local user).

Routes outside `scribe/api.py` (other routers on the same app) depend on it the same way:
`principal: Principal = Depends(current_principal)`, then `scribe.access.readable_session(...)`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Callable, Mapping

from fastapi import Request

from scribe.api_access import ApiError, access_error, cross_site_error
from scribe.errors import SignInError
from scribe.identity import LOCAL, SERVICE, EntryRules, Principal
from scribe.storage import Storage


@dataclass(frozen=True)
class AuthContext:
    """What resolving a caller needs from the serving process (each read when asked)."""

    service_token: Callable[[], str | None]
    """SCRIBE_API_TOKEN, or None; raises the API's 503 while settings are unreadable."""
    team_mode: Callable[[], bool]
    """Sign-in is configured (`[auth]` in .streamlit/secrets.toml)."""
    storage: Callable[[], Storage]
    rules: Callable[[], EntryRules]


_installed: AuthContext | None = None
PRINCIPAL_KEY = "scribe.principal"
"""Where a request's resolved caller is kept in its ASGI scope (set by the API's AccessGate)."""


def install(context: AuthContext) -> None:
    """Called by the API's builder: the context `current_principal` resolves callers with."""
    global _installed
    _installed = context


def carries_personal_token(headers: Mapping[str, str]) -> bool:
    """A personal token (its check reads the database); other callers resolve without I/O."""
    from scribe.accounts import TOKEN_PREFIX

    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and given.strip().startswith(TOKEN_PREFIX)


def resolve(client_host: str | None, headers: Mapping[str, str], context: AuthContext) -> Principal:
    """The caller of a request, or the API's 401/403 error saying what to send."""
    from scribe.accounts import TOKEN_PREFIX, principal_for_token

    if (refused := cross_site_error(headers)) is not None:
        raise refused
    service = context.service_token()
    scheme, _, given = headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given:
        if service and hmac.compare_digest(given.encode(), service.encode()):
            return SERVICE
        if given.startswith(TOKEN_PREFIX):
            try:
                return principal_for_token(context.storage(), given, context.rules())
            except SignInError as exc:
                raise ApiError(401, f"{exc}: create a token on the API tokens page") from None
        raise ApiError(401, "missing or wrong API token: send Authorization: Bearer <token>")
    if context.team_mode():
        raise ApiError(401, "sign-in is on: send Authorization: Bearer <your personal API token> "
                            "(create one on the API tokens page)")
    if (error := access_error(client_host, headers, service)) is not None:
        raise error
    return LOCAL


def installed() -> AuthContext:
    """The context `/api` installed (other mounted apps' gates resolve callers with it)."""
    if _installed is None:
        raise ApiError(503, "Scribe is starting")
    return _installed


def principal_of(client_host: str | None, headers: Mapping[str, str]) -> Principal:
    """The caller of a request or socket outside a FastAPI dependency (the realtime socket):
    the same resolution, with the context the API installed; raises the API's error."""
    return resolve(client_host, headers, installed())


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller of this request (see the module's docstring)."""
    context = getattr(request.app.state, "scribe_auth", None) or _installed
    if context is None:
        raise ApiError(503, "Scribe is starting")
    cached = request.scope.get(PRINCIPAL_KEY)
    if isinstance(cached, Principal):
        return cached
    client = request.client.host if request.client else None
    principal = resolve(client, request.headers, context)
    request.scope[PRINCIPAL_KEY] = principal
    return principal
