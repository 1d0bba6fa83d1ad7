"""AppTest helpers for the page tests: a seeded data folder and the shared Runtime closed afterwards."""

from __future__ import annotations

import time
from pathlib import Path

from seed_sessions import seed_session
from streamlit.testing.v1 import AppTest

from scribe.config import Settings
from scribe.core import SegmentRow
from scribe.storage import Storage

ROOT = Path(__file__).parent.parent
TRICKY = "Literal <script>alert(1)</script> and **x** must stay text."


def seed_demo(data_dir: Path) -> dict[str, str]:
    """Four sessions covering the page's cases; returns {name: session id}."""
    settings = Settings.from_env({}, data_dir=data_dir)
    storage = Storage(settings.db)
    now = time.time()
    try:
        plan = seed_session(storage, settings.audio_dir, [
            ("Alice", "Welcome, let's start with the budget review."),
            ("Bob", "We agreed to move the launch date to March."),
            ("Carol", "Bob will send the budget spreadsheet by Friday."),
            (None, "thank you " * 8)], title="Weekly planning", created_at=now - 3600)
        tricky = seed_session(storage, settings.audio_dir, [("Dan", TRICKY), ("Eve", "Onboarding feedback.")],
                              title="Support **draft**", created_at=now - 7200, failed_seqs=[1], status="stopped")
        final = seed_session(storage, settings.audio_dir, [(None, "live words about migration")],
                             title="Migration", created_at=now - 86_400 * 3)
        storage.replace_transcript(final.id, "final", [SegmentRow(final.id, 0, 0, 100, 4000,
                                                                  "Final words about migration.", transcript="final")])
        empty = storage.create_session(title="Just started", source="mic", backend="stub", model="m",
                                       chunk_seconds=15, chunk_policy="pause", now=now)
    finally:
        storage.close()
    return {"plan": plan.id, "tricky": tricky.id, "final": final.id, "recording": empty.id}


def app(page: str, data_dir: Path, monkeypatch, env: dict[str, str] | None = None, **query: str) -> AppTest:
    """An AppTest for pages/<page>.py on `data_dir` with the stub backend, already run once."""
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    for var in ("SCRIBE_DB", "GEMINI_API_KEY", "SCRIBE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (env or {}).items():
        monkeypatch.setenv(var, value)
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def close_runtime(data_dir: Path, env: dict[str, str] | None = None) -> None:
    """Close the Runtime the pages built on `data_dir` (RUNTIMES keeps one per Settings)."""
    from pages import _shared

    settings = Settings.from_env({"SCRIBE_DATA_DIR": str(data_dir), "SCRIBE_BACKEND": "stub", **(env or {})})
    _shared.RUNTIMES.discard(settings)  # the kept instance: same Settings, same key


def markup_values(at: AppTest) -> list[str]:
    """Source text of every element that renders Markdown."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success",
             "toast")
    values = []
    for kind in kinds:
        values += [str(e.value) for e in at.get(kind)]
    return values


def frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]
