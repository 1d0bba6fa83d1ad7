"""Vocabulary: the team's names, products and jargon, given to every model that transcribes.

Terms are added here (or with `python -m scribe vocabulary add`), or in one click from a
person's correction that wrote a new name over a misheard word. Terms are shown as plain
text (st.dataframe, st.text), never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages._shared import runtime
from scribe.errors import ScribeError
from scribe.storage.vocabulary import MAX_TERMS, split_terms
from scribe.timelabels import local_datetime
from scribe.vocabulary import correction_suggestions

rt = runtime()
storage = rt.storage
st.title("Vocabulary")
st.caption(f"Names, products and jargon every model is told about (Whisper's prompt, Gemini's "
           f"instruction), so they are spelled right. At most {MAX_TERMS} terms.")

with st.form("vocabulary-add", clear_on_submit=True):
    typed = st.text_input("Add terms", placeholder="Siobhan, DuckDB, Kubeflow", max_chars=2000)
    if st.form_submit_button("Add", type="primary"):
        try:
            added = storage.add_terms(split_terms(typed))
            st.toast(f"Added {len(added)} term(s)." if added else "Already in the vocabulary.")
        except ScribeError as exc:
            st.error(str(exc))

suggested = correction_suggestions(storage)
if suggested:
    st.subheader("From corrections")
    for n, (suggestion, session_id) in enumerate(suggested):
        left, button = st.columns([5, 1], vertical_alignment="center")
        left.text(f"{suggestion.term}   (written over “{suggestion.heard}”)")
        if button.button("Add", key=f"vs-{n}-{suggestion.term}"):
            try:
                storage.add_terms([suggestion.term], source="correction",
                                  detail=f"over '{suggestion.heard}' in {session_id}")
            except ScribeError as exc:
                st.error(str(exc))
            else:
                st.rerun()

terms = storage.list_vocabulary()
st.subheader(f"Terms ({len(terms)})")
if not terms:
    st.info("No terms yet.")
    st.stop()
st.dataframe([{"term": t.term, "source": t.source, "where from": t.detail or "",
               "added": local_datetime(t.created_at)} for t in terms], hide_index=True, width="stretch")
left, button = st.columns([4, 1], vertical_alignment="bottom")
gone = left.selectbox("Remove a term", [t.term for t in terms], key="vocabulary-remove")
if button.button("Remove"):
    storage.remove_term(gone)
    st.rerun()
