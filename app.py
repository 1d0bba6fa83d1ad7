"""Scribe: `streamlit run app.py` serves the UI and the REST API (/api) from one process.

Two roles, one file. Imported by the ASGI server that `streamlit run` starts, it defines
`app`: the st.App whose lifespan builds the shared Runtime at server start and whose routes
mount the API (scribe/server.py, scribe/api.py). Run by Streamlit for each browser session
(as `__main__`), it draws the shared frame: navigation over pages/ and the sidebar; the
Runtime lives in pages/_shared.py.
"""

from pathlib import Path

import streamlit as st

if __name__ != "__main__":
    from scribe.server import AppServer

    def _server_hooks():
        from pages._shared import server_hooks  # at start-up, inside the running server

        return server_hooks()

    server = AppServer(_server_hooks)
    app = st.App(__file__, routes=server.routes(), middleware=server.middleware(), lifespan=server.lifespan)
else:
    from pages._recorder import shared_recorder
    from pages._shared import account_box, mark_app_ran, open_to_network_banner, principal, sidebar

    PAGES = [
        ("pages/record.py", "Record", ":material/mic:"),
        ("pages/sessions.py", "Sessions", ":material/history:"),
        ("pages/summary.py", "Summary", ":material/summarize:"),
        ("pages/vocabulary.py", "Vocabulary", ":material/spellcheck:"),
        ("pages/analytics.py", "Analytics", ":material/monitoring:"),
        ("pages/lab.py", "Chunking lab", ":material/science:"),
        ("pages/account.py", "Account", ":material/person:"),
    ]

    here = Path(__file__).parent
    # A file, not an icon name: Streamlit turns icon names into a font-CDN URL for the tab,
    # and Scribe works offline.
    st.set_page_config(page_title="Scribe", page_icon=str(here / "scribe" / "assets" / "scribe-icon.png"),
                       layout="wide")
    # Before anything else is drawn: with sign-in configured, this shows the sign-in screen
    # (or a refusal) and stops; no recorder, no sidebar, no page runs for a stranger.
    who = principal()
    open_to_network_banner()
    available = [st.Page(path, title=title, icon=icon) for path, title, icon in PAGES if (here / path).exists()]
    if not available:
        st.title("Scribe")
        st.info("No pages yet. Transcribe a recording with `python -m scribe transcribe FILE`.")
        st.stop()
    page = st.navigation(available)
    mark_app_ran()
    # After navigation, so the page links stay on top of the sidebar. The recorder is drawn
    # here, not by a page, so switching pages never unmounts it and a recording goes on;
    # it goes above the settings but runs after them (it uses the runtime they choose).
    recorder_slot = st.sidebar.container()
    account_box(who)
    sidebar()
    shared_recorder(recorder_slot)
    page.run()
