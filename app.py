"""Scribe: the Streamlit entry point (placeholder until the live Record page lands)."""

import streamlit as st

st.set_page_config(page_title="Scribe", page_icon=":memo:", layout="wide")
st.title("Scribe")
st.info("Transcribe a recording with `python -m scribe transcribe FILE`. "
        "The live Record page is on its way.")
