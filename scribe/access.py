"""The one access rule: who may read and who may change a session.

Every read and write of a session goes through here: the pages, the API (and the CLI
through it), search, analytics, exports, audio, summaries and speakers. The rule:

- an administrator (`SCRIBE_ADMINS`, the service token, the local user) reads and changes all;
- the owner reads and changes their own sessions;
- a signed-in person reads a session whose visibility is `team`;
- a person named in a session's shares reads it while its visibility is `shared`.

Work that runs a backend has its own rule, here too: an administrator may use every backend
and model; anyone else only the server's backend and those in `SCRIBE_USER_BACKENDS`, with the
server's models (`check_backend_allowed`). Summarizers follow the same list, except the offline
one, which is open to everyone who may change the session (`scribe.summaries.summarizers_open_to`).

Reading is decided by one SQL condition (`readable_sql`), used for single sessions and for
lists, counts, search and analytics alike, so a list can never show what a direct read would
refuse. A session the caller may not read is answered exactly like a missing one
(`NotFoundError` with the same message): neither its existence nor its title leaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scribe import backends
from scribe.core import SessionRow
from scribe.errors import AccessDeniedError, NotFoundError, ScribeError
from scribe.identity import Principal

if TYPE_CHECKING:
    from scribe.config import Settings
    from scribe.storage import Storage

PRIVATE, TEAM, SHARED = "private", "team", "shared"
VISIBILITIES = (PRIVATE, TEAM, SHARED)
VISIBILITY_HELP = {PRIVATE: "only you (and administrators)",
                   TEAM: "everyone who signs in to this Scribe",
                   SHARED: "the people you name"}


def readable_sql(principal: Principal, alias: str = "sessions") -> tuple[str, list[Any]]:
    """A WHERE condition (and its parameters) true for the sessions `principal` may read.

    `alias` names the sessions table in the caller's query."""
    if principal.is_admin:
        return "TRUE", []
    return (f"""({alias}.owner_id = ?
        OR ({alias}.visibility = 'team' AND ?)
        OR ({alias}.visibility = 'shared' AND EXISTS (SELECT 1 FROM session_shares sh
            WHERE sh.session_id = {alias}.id AND sh.user_id = ?)))""",
            [principal.user_id, principal.signed_in, principal.user_id])


def not_found(session_id: str) -> NotFoundError:
    """The one answer for a session that is missing or not readable by the caller."""
    return NotFoundError(f"no session {session_id!r}")


def readable_session(storage: Storage, principal: Principal, session_id: str) -> SessionRow:
    """The session, when `principal` may read it; else NotFoundError as if it did not exist."""
    session = storage.find_readable_session(session_id, principal)
    if session is None:
        raise not_found(session_id)
    return session


def can_write(principal: Principal, session: SessionRow) -> bool:
    """Owner or administrator: may rename, correct, relabel, summarize, retry, re-transcribe,
    change sharing and delete."""
    return principal.is_admin or session.owner_id == principal.user_id


def writable_session(storage: Storage, principal: Principal, session_id: str) -> SessionRow:
    """The session, when `principal` may change it. A reader gets AccessDeniedError (they
    know it exists); anyone else gets the not-found answer."""
    session = readable_session(storage, principal, session_id)
    if not can_write(principal, session):
        raise AccessDeniedError(f"only the owner of session {session_id!r} or an administrator may change it")
    return session


def check_visibility(value: str) -> str:
    if value not in VISIBILITIES:
        raise ScribeError(f"unknown visibility {value!r}: use {', '.join(VISIBILITIES)}")
    return value


def backends_open_to(principal: Principal, settings: Settings) -> tuple[str, ...]:
    """The transcription backends `principal` may use: every one for an administrator; else the
    server's and those in SCRIBE_USER_BACKENDS (another backend may cost money or load a model)."""
    if principal.is_admin:
        return backends.names()
    return tuple(dict.fromkeys((settings.backend, *settings.user_backends)))


def check_backend_allowed(principal: Principal, settings: Settings, backend: str | None,
                          model: str | None = None) -> None:
    """AccessDeniedError unless `principal` may run `backend` (default: the server's) with
    `model` (a person who is not an administrator keeps the server's models)."""
    if principal.is_admin:
        return
    backend = backend or settings.backend
    allowed = backends_open_to(principal, settings)
    if backend not in allowed:
        raise AccessDeniedError(f"the {backend} backend is not open to you here; the administrators allow "
                                f"{', '.join(allowed)}")
    if model and model != (backends.spec(backend).configured_model(settings) or model):
        raise AccessDeniedError("the models are chosen by this server's administrators; leave model out")

