"""What a person does with access: share a session, hand it to someone else, and keep
personal API tokens. Every change here is checked by `scribe.access` and written to the
audit log (who, what, when); pages and the API call these functions alike.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from scribe.access import PRIVATE, SHARED, check_visibility, writable_session
from scribe.core import SessionRow
from scribe.errors import AccessDeniedError, ScribeError, SignInError
from scribe.identity import LOCAL, LOCAL_ID, SERVICE, EntryRules, Principal, normalize_email
from scribe.storage import Storage, TokenRow, UserRow

TOKEN_PREFIX = "scribe_"
_TOKEN_SHAPE = re.compile(r"scribe_[A-Za-z0-9_-]{40,60}")
MAX_LABEL_CHARS = 80


class ShareError(ScribeError):
    """Sharing cannot be done as asked (for example an email no one signed in with)."""


# -- sharing -------------------------------------------------------------------------
def set_visibility(storage: Storage, actor: Principal, session_id: str, visibility: str) -> SessionRow:
    """private, team or shared (with the people in its share list); owner or admin only."""
    session = writable_session(storage, actor, session_id)
    check_visibility(visibility)
    if visibility != session.visibility:
        storage.update_session(session.id, visibility=visibility)
        storage.audit(actor, "visibility", session.id, f"{session.visibility} -> {visibility}")
    return storage.get_session(session.id)


def person_by_email(storage: Storage, email: str) -> UserRow:
    """The person who signed in with `email` (most recently), or ShareError saying why not."""
    clean = normalize_email(email)
    if "@" not in clean or " " in clean:
        raise ShareError(f"{email.strip()!r} is not an email address")
    people = storage.users_by_email(clean)
    if not people:
        raise ShareError(f"no one has signed in to Scribe as {clean} yet: ask them to sign in once, "
                         "then share again")
    return people[0]


def share_with(storage: Storage, actor: Principal, session_id: str, email: str) -> UserRow:
    """Let the person with `email` read the session; its visibility becomes `shared` unless
    the whole team may already read it."""
    session = writable_session(storage, actor, session_id)
    person = person_by_email(storage, email)
    if person.id == session.owner_id:
        raise ShareError(f"{person.email} owns this session already")
    if storage.add_share(session.id, person.id, shared_by=actor.user_id):
        storage.audit(actor, "share", session.id, person.email)
    if session.visibility == "private":
        set_visibility(storage, actor, session.id, SHARED)
    return person


def unshare(storage: Storage, actor: Principal, session_id: str, user_id: str) -> bool:
    """Take one person's read access away; True when they had it. With nobody left to share
    with, a `shared` session becomes private again."""
    session = writable_session(storage, actor, session_id)
    person = storage.get_user(user_id)
    removed = storage.remove_share(session.id, user_id)
    if removed:
        storage.audit(actor, "unshare", session.id, person.email if person else user_id)
    if session.visibility == SHARED and not storage.session_shares(session.id):
        set_visibility(storage, actor, session.id, PRIVATE)
    return removed


def reassign_owner(storage: Storage, actor: Principal, session_id: str, email: str) -> SessionRow:
    """An administrator hands a session (for example one made before sign-in) to a person."""
    if not actor.is_admin:
        raise AccessDeniedError("only an administrator may change who owns a session")
    session = writable_session(storage, actor, session_id)
    person = person_by_email(storage, email)
    if person.id != session.owner_id:
        storage.update_session(session.id, owner_id=person.id)
        storage.audit(actor, "reassign", session.id, f"{session.owner_id} -> {person.email}")
    return storage.get_session(session.id)


def owner_label(storage: Storage, session: SessionRow) -> str:
    """How a page names a session's owner."""
    person = storage.get_user(session.owner_id)
    return person.email if person else {LOCAL_ID: "the local user", SERVICE.user_id: "the service token"}.get(
        session.owner_id, session.owner_id)


# -- personal API tokens ---------------------------------------------------------------
@dataclass(frozen=True)
class NewToken:
    row: TokenRow
    secret: str
    """Shown once, at creation; only its hash is stored."""


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(storage: Storage, owner: Principal, label: str) -> NewToken:
    """A new personal token acting as `owner` (256 random bits, stored as a SHA-256 hash)."""
    clean = " ".join(label.split())
    if not clean:
        raise ScribeError("give the token a name (what it is for)")
    if len(clean) > MAX_LABEL_CHARS:
        raise ScribeError(f"a token name is at most {MAX_LABEL_CHARS} characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = storage.add_token(owner.user_id, clean, token_hash(secret))
    storage.audit(owner, "token create", row.id, clean)
    return NewToken(row, secret)


def revoke_token(storage: Storage, owner: Principal, token_id: str) -> None:
    if not storage.revoke_token(owner.user_id, token_id):
        raise ScribeError(f"you have no live token {token_id!r}")
    storage.audit(owner, "token revoke", token_id)


def principal_for_token(storage: Storage, secret: str, rules: EntryRules) -> Principal:
    """The person a personal token acts as; SignInError for a malformed, unknown or revoked
    token, or one whose person may no longer sign in."""
    if not _TOKEN_SHAPE.fullmatch(secret):
        raise SignInError("malformed API token")
    row = storage.token_by_hash(token_hash(secret))
    if row is None:
        raise SignInError("unknown API token")
    if row.revoked_at is not None:
        raise SignInError("this API token was revoked")
    principal = principal_for_user(storage, row.user_id, rules)
    if principal is not LOCAL and not rules.admits(principal.email):
        raise SignInError("this API token's person may no longer use Scribe")
    storage.touch_token(row.id)
    return principal


def principal_for_user(storage: Storage, user_id: str, rules: EntryRules) -> Principal:
    """A person known by id (a token's owner), as the rule sees them now (admin by email)."""
    if user_id == LOCAL_ID:
        return LOCAL
    person = storage.get_user(user_id)
    email = person.email if person else ""
    return Principal(user_id, email=email, name=person.name if person else "",
                     is_admin=bool(email) and email in rules.admins, signed_in=True)
