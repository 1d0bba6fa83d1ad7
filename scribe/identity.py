"""Who is asking: the `Principal` every access decision is made for.

A person is identified by their sign-in provider (issuer) and their id there (subject),
never by email alone: an address can be reassigned, a subject cannot. Two principals
exist without a sign-in: `LOCAL`, the one implicit user of a machine with no sign-in
configured (who owns everything, as before accounts existed), and `SERVICE`, the caller
holding the server's `SCRIBE_API_TOKEN` (an administrator's key for scripts).

Who may enter and who is an administrator come from email lists in the environment
(`SCRIBE_ALLOWED_EMAIL_DOMAINS`, `SCRIBE_ALLOWED_EMAILS`, `SCRIBE_ADMINS`); this module
holds the parsing and the checks, so the pages and the API decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

LOCAL_ID = "local"
SERVICE_ID = "service"


@dataclass(frozen=True)
class Principal:
    """The caller of a page, an API request or a CLI command run through the API."""

    user_id: str
    """`issuer|subject` for a signed-in person; `local` or `service` otherwise."""
    email: str = ""
    name: str = ""
    is_admin: bool = False
    signed_in: bool = False
    """A person who signed in (or acts through their own token): may read team-visible sessions."""

    @property
    def label(self) -> str:
        """How the person is named on a page or in the audit log."""
        return self.email or self.name or self.user_id


LOCAL = Principal(LOCAL_ID, name="local user", is_admin=True)
"""The one user of a machine without sign-in: owns every session."""
SERVICE = Principal(SERVICE_ID, name="service token", is_admin=True)
"""The holder of SCRIBE_API_TOKEN: an administrator's key for scripts and the CLI."""


def user_id_for(issuer: str, subject: str) -> str:
    """A person's stable id: their provider and their id there."""
    return f"{issuer}|{subject}"


def normalize_email(email: str) -> str:
    """Emails compare without case or surrounding space."""
    return email.strip().lower()


def parse_list(raw: str | None) -> frozenset[str]:
    """A comma- or space-separated list of emails or domains, normalised (`@` before a
    domain is dropped): ` Alice@X.org ,bob@x.org` -> {alice@x.org, bob@x.org}."""
    items = (normalize_email(part).lstrip("@") for part in (raw or "").replace(";", ",").replace(" ", ",")
             .split(","))
    return frozenset(item for item in items if item)


@dataclass(frozen=True)
class EntryRules:
    """Who may sign in and who administers: built once from the settings."""

    allowed_domains: frozenset[str] = frozenset()
    allowed_emails: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()

    def admits(self, email: str) -> bool:
        """An email may enter when it is listed or in a listed domain; with neither list set,
        any account the provider signs in may enter (the provider is then the gate)."""
        email = normalize_email(email)
        if not self.allowed_domains and not self.allowed_emails:
            return bool(email)
        domain = email.rpartition("@")[2]
        return email in self.allowed_emails or (bool(domain) and domain in self.allowed_domains) \
            or email in self.admins

    def refusal(self, email: str) -> str | None:
        """The one line shown to a person who may not enter, or None."""
        if self.admits(email):
            return None
        if not email.strip():
            return "Your sign-in did not give an email address, so Scribe cannot tell whether you may enter."
        return (f"{email.strip()} may not use this Scribe: its administrators allow "
                + _allowed_phrase(self.allowed_domains, self.allowed_emails) + ".")

    def person(self, issuer: str, subject: str, email: str, name: str) -> Principal:
        """The principal of a person who signed in (whether they may enter is `admits`)."""
        email = normalize_email(email)
        return Principal(user_id_for(issuer, subject), email=email, name=name.strip(),
                         is_admin=email in self.admins, signed_in=True)


def _allowed_phrase(domains: Iterable[str], emails: Iterable[str]) -> str:
    parts = []
    if domains:
        parts.append("addresses at " + ", ".join(sorted(domains)))
    if emails:
        parts.append("listed people")
    return " and ".join(parts) or "no one"
