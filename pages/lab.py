"""Chunking lab: how chunk policies trade transcript quality against latency."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from pages._shared import principal, runtime
from pages._text import literal
from scribe import lab
from scribe.chunking import POLICY_HELP, POLICY_NAMES
from scribe.errors import ScribeError
from scribe.ingest import check_upload
from scribe.timelabels import mmss

DEMO, UPLOAD, SESSION = "Built-in demo", "Upload audio + reference", "A stored session"

rt = runtime()

# -- sidebar: what to run -------------------------------------------------------
with st.sidebar:
    st.header("Lab settings")
    source = st.radio("Recording", [DEMO, UPLOAD, SESSION])
    policies = st.multiselect("Policies", lab.PRESET_POLICIES, default=list(lab.DEFAULT_POLICIES),
                              help="; ".join(POLICY_HELP[name] for name in POLICY_NAMES) + ".")
    extra = st.text_input("More policies", placeholder="e.g. pause:12, fixed:8")
    st.caption(f"Runs on the backend chosen under Settings: {rt.transcriber.name} / {rt.transcriber.model}.")

st.title("Chunking lab")
st.caption("Short chunks show text sooner, but every cut can split a word and costs the model context. "
           "Run policies over one recording through the real pipeline and compare word error rate "
           "(WER) with the latency a listener would see.")

if "lab_runs" not in st.session_state:
    st.session_state.lab_runs = []
    st.session_state.lab_label = ""

# -- the recording and its reference ----------------------------------------------
audio_path: Path | None = None
reference = ""
if source == DEMO:
    audio_path, reference = lab.demo_recording()
    st.audio(str(audio_path))
    with st.expander("Reference transcript"):
        st.text(reference)
elif source == UPLOAD:
    upload = st.file_uploader("Recording", type=["wav", "mp3", "m4a", "ogg", "opus", "webm", "flac"])
    ref_file = st.file_uploader("Reference transcript (.txt)", type=["txt"])
    reference = ref_file.getvalue().decode("utf-8", "replace") if ref_file else \
        st.text_area("...or paste the reference", height=120)
    if upload is not None:
        try:
            checked = check_upload(rt.settings, size=upload.size, file_name=upload.name)
        except ScribeError as exc:
            st.error(str(exc))
            st.stop()
        if st.session_state.get("lab_upload", (None, None))[0] != upload.file_id:
            st.session_state.lab_upload = (upload.file_id, lab.save_upload(upload.getvalue(), checked.file_name))
        audio_path = st.session_state.lab_upload[1]
else:
    sessions = [s for s in rt.storage.list_sessions(limit=200, visible_to=principal())
                if s.status in ("stopped", "done")]
    if not sessions:
        st.info("No finished sessions yet. Record or upload one first, or use the built-in demo.")
        st.stop()
    chosen = st.selectbox("Session", sessions, format_func=lambda s: f"{s.title} ({mmss(s.duration_ms)}, {s.id})")
    reference = st.text_area("Reference transcript (what was actually said)", height=120)
    if reference.strip():
        try:
            wers = lab.transcript_wers(rt.storage, chosen.id, reference)
        except ScribeError as exc:
            st.error(str(exc))
            st.stop()
        live, final = st.columns(2)
        live.metric("Live transcript WER", "-" if wers["live"] is None else f"{wers['live'] * 100:.1f} %")
        final.metric("Final-pass WER", "not run yet" if wers["final"] is None else f"{wers['final'] * 100:.1f} %")
        if warning := lab.coverage_warning(reference, rt.storage.session_text(chosen.id)):
            st.warning(warning)
    if st.session_state.get("lab_session_audio", (None, None))[0] != chosen.id:
        st.session_state.lab_session_audio = (
            chosen.id, lab.export_session_audio(rt.storage, chosen.id, Path(tempfile.mkdtemp())))
    audio_path = st.session_state.lab_session_audio[1]

specs = policies + [p.strip() for p in extra.split(",") if p.strip()]
ready = audio_path is not None and reference.strip() and specs
if st.button("Run policies", type="primary", disabled=not ready) and audio_path is not None:
    bar = st.progress(0.0, text="starting")
    try:
        st.session_state.lab_runs = lab.run_eval(
            audio_path, reference, specs, transcriber=rt.transcriber,
            results=lab.OwnedResults(rt.storage, principal().user_id),
            label=audio_path.name, progress=lambda f, msg: bar.progress(min(f, 1.0), text=msg),
            context_seconds=rt.settings.noisy_context_seconds)
        st.session_state.lab_label = audio_path.name
    except ScribeError as exc:
        st.error(str(exc))
    bar.empty()
elif not ready:
    st.info("Choose a recording, give its reference transcript and pick at least one policy.")

# -- results ------------------------------------------------------------------------
runs = st.session_state.lab_runs
if runs:
    st.subheader(f"Results: {literal(st.session_state.lab_label)}", anchor=False)
    if warning := lab.coverage_warning(reference, runs[0].hypothesis):
        st.warning(warning)
    table = pd.DataFrame(lab.runs_table(runs))
    st.dataframe(table, hide_index=True, width="stretch")
    fig = px.scatter(table, x="listener latency (s)", y="WER %", text="policy",
                     hover_data=["chunks", "mean chunk (s)", "words lost at cuts"],
                     title="Word error rate vs listener latency (lower left is better)")
    fig.update_traces(textposition="top center", marker={"size": 14})
    # Log scale: 'whole' waits for the entire recording and would squash the rest.
    fig.update_xaxes(type="log", title="listener latency: chunk length + processing (s, log scale)",
                     tickvals=[1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600])
    fig.update_yaxes(title="word error rate (%)", range=[0, table["WER %"].max() * 1.25 + 1])
    st.plotly_chart(fig, width="stretch")
    with st.expander("Transcripts"):
        for run in runs:
            st.markdown(f"**{literal(run.policy)}** ({run.wer * 100:.1f} % WER)")
            st.text(run.hypothesis or "(nothing)")

st.subheader("Previous runs")
history = lab.stored_runs_table(rt.storage, visible_to=principal())
if history:
    st.dataframe(pd.DataFrame(history), hide_index=True, width="stretch")
else:
    st.caption("No runs stored yet.")
