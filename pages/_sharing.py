"""The Sharing section of a session's detail: who owns it, who may read it, and (for its owner
or an administrator) the controls to change that. The rule itself lives in scribe.access;
every change goes through scribe.accounts, which checks it and writes the audit log."""

from __future__ import annotations

import streamlit as st

from pages._shared import sign_in_configured
from scribe import accounts
from scribe.access import VISIBILITIES, VISIBILITY_HELP, can_write
from scribe.core import SessionRow
from scribe.errors import ScribeError
from scribe.identity import Principal
from scribe.storage import Storage


def sharing_section(storage: Storage, who: Principal, session: SessionRow) -> None:
    if not sign_in_configured():
        return  # one local user: nobody to share with
    shares = storage.session_shares(session.id)
    with st.expander(f"Sharing: {session.visibility}", icon=":material/group:"):
        st.caption(f"Owner: {accounts.owner_label(storage, session)}. "
                   f"Who may read it: {VISIBILITY_HELP[session.visibility]}.")
        if shares:
            st.caption("Shared with: " + ", ".join(p.email for p in shares))
        if not can_write(who, session):
            st.caption("Only the owner or an administrator may change, share or delete it.")
            return
        _visibility(storage, who, session)
        _share(storage, who, session)
        if shares:
            _unshare(storage, who, session, shares)
        if who.is_admin:
            _reassign(storage, who, session)


def _visibility(storage: Storage, who: Principal, session: SessionRow) -> None:
    choice = st.radio("Who may read it", VISIBILITIES, index=VISIBILITIES.index(session.visibility),
                      horizontal=True, key=f"visibility-{session.id}-{session.visibility}",  # reset when it changes
                      format_func=lambda v: f"{v}: {VISIBILITY_HELP[v]}")
    if choice != session.visibility:
        _apply(lambda: accounts.set_visibility(storage, who, session.id, choice), "Visibility changed.")


def _share(storage: Storage, who: Principal, session: SessionRow) -> None:
    with st.form(f"share-{session.id}", border=False, clear_on_submit=True):
        email = st.text_input("Share with (email)", placeholder="name@example.com",
                              key=f"share-email-{session.id}")
        if st.form_submit_button("Share", icon=":material/person_add:"):
            _apply(lambda: accounts.share_with(storage, who, session.id, email), f"Shared with {email.strip()}.")


def _unshare(storage: Storage, who: Principal, session: SessionRow, shares) -> None:
    people = {p.id: p.email for p in shares}
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Stop sharing with", list(people), format_func=people.get,
                            key=f"unshare-who-{session.id}")
    if right.button("Unshare", key=f"unshare-{session.id}", icon=":material/person_remove:"):
        _apply(lambda: accounts.unshare(storage, who, session.id, chosen), f"No longer shared with {people[chosen]}.")


def _reassign(storage: Storage, who: Principal, session: SessionRow) -> None:
    with st.form(f"reassign-{session.id}", border=False, clear_on_submit=True):
        email = st.text_input("Give to (email, administrators only)", key=f"reassign-email-{session.id}")
        if st.form_submit_button("Change owner"):
            _apply(lambda: accounts.reassign_owner(storage, who, session.id, email), "Owner changed.")


def _apply(action, done: str) -> None:
    try:
        action()
    except ScribeError as exc:
        st.error(str(exc))
        return
    st.toast(done)
    st.rerun()
