"""Account: who you are signed in as, your personal API tokens, and (for administrators) the
audit log. A token is shown once, when it is made; only its hash is stored."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._shared import principal, runtime
from scribe import accounts
from scribe.errors import ScribeError
from scribe.timelabels import local_datetime

NEW_TOKEN = "account_new_token"

rt = runtime()
storage = rt.storage
who = principal()

st.title("Account")
st.caption(f"Signed in as {who.label}" + (" (administrator)." if who.is_admin else "."))

st.subheader("API tokens", anchor=False)
st.caption("A token lets the API and the command line act as you, with your access: send "
           "`Authorization: Bearer <token>`, or set `SCRIBE_API_TOKEN` to it where you run the CLI.")
if (made := st.session_state.pop(NEW_TOKEN, None)) is not None:
    st.success(f"Token “{made.row.label}” made. Copy it now: it is not shown again.")
    st.code(made.secret, language=None)

with st.form("new-token", border=False, clear_on_submit=True):
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    label = left.text_input("Name of a new token", placeholder="laptop CLI", max_chars=accounts.MAX_LABEL_CHARS)
    if right.form_submit_button("Create token", icon=":material/key:"):
        try:
            st.session_state[NEW_TOKEN] = accounts.create_token(storage, who, label)
            st.rerun()
        except ScribeError as exc:
            st.error(str(exc))

tokens = storage.list_tokens(who.user_id)
if tokens:
    st.dataframe(pd.DataFrame([{
        "name": t.label, "id": t.id, "created": local_datetime(t.created_at),
        "last used": local_datetime(t.last_used_at) if t.last_used_at else "never",
        "state": f"revoked {local_datetime(t.revoked_at)}" if t.revoked_at else "active"} for t in tokens]),
        hide_index=True)
    live = {t.id: t.label for t in tokens if t.revoked_at is None}
    if live:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        chosen = left.selectbox("Revoke", list(live), format_func=lambda i: f"{live[i]} ({i})")
        if right.button("Revoke token", icon=":material/key_off:"):
            accounts.revoke_token(storage, who, chosen)
            st.toast(f"Revoked “{live[chosen]}”.")
            st.rerun()
else:
    st.caption("No tokens yet.")

if who.is_admin:
    st.subheader("Audit log", anchor=False)
    st.caption("Deletes, sharing changes, tokens made and revoked, sessions handed to another owner.")
    events = storage.list_audit(limit=500)
    if events:
        st.dataframe(pd.DataFrame([{"when": local_datetime(e.at), "who": e.actor, "what": e.action,
                                    "session or token": e.target, "detail": e.detail} for e in events]),
                     hide_index=True, width="stretch")
    else:
        st.caption("Nothing recorded yet.")
