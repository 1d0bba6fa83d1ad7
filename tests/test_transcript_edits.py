"""A person's corrections: stored beside the machine text, seen by every reader, undoable."""

from __future__ import annotations

import json
import time

from seed_sessions import seed_session

from scribe import export
from scribe.config import Settings
from scribe.core import SegmentRow
from scribe.search import search
from scribe.storage import Storage
from scribe.summaries import summarize_session

WRONG = "The budget for the fiance department is approved."
RIGHT = "The budget for the finance department is approved."


def seeded(storage: Storage, settings: Settings):
    return seed_session(storage, settings.audio_dir, [
        ("Alice", "Welcome everyone to the planning meeting."),
        ("Bob", WRONG),
        (None, "We agreed to move the launch to March.")], title="Planning", created_at=time.time())


def test_an_edit_is_what_search_summaries_and_every_export_see(storage, settings):
    session = seeded(storage, settings)
    storage.edit_segment(session.id, "live", 1, 0, RIGHT)
    segments = storage.list_segments(session.id)
    assert segments[1].text == RIGHT and segments[1].machine_text == WRONG and segments[1].edited
    assert not segments[0].edited
    assert [h.text for h in search(storage, "finance").hits] == [RIGHT]
    assert search(storage, '"fiance department"').total == 0  # the machine's word is gone for readers
    summary, _row = summarize_session(storage, settings, session.id)
    assert "fiance" not in json.dumps(summary.to_dict())
    for fmt in export.FORMATS:
        rendered = export.render(fmt, storage.get_session(session.id), segments)
        assert "finance" in rendered and "fiance" not in rendered, fmt
    assert json.loads(export.render("json", session, segments))["segments"][1]["edited"] is True


def test_retry_and_final_pass_keep_the_edit_and_undo_restores_the_machine_text(storage, settings):
    session = seeded(storage, settings)
    storage.edit_segment(session.id, "live", 1, 0, RIGHT)
    # A retry or re-transcription rewrites the chunk's machine text; the correction stays on top.
    storage.save_segments(session.id, 1, [SegmentRow(session.id, 1, 0, 5200, 9800, "The budget for the fiancé "
                                                     "department is approved.")], finished_at=2.0)
    storage.replace_transcript(session.id, "final", [SegmentRow(session.id, 0, 0, 0, 9000, "final text",
                                                                transcript="final")])
    (edited,) = [s for s in storage.list_segments(session.id) if s.edited]
    assert edited.text == RIGHT and edited.machine_text.startswith("The budget for the fiancé")
    assert storage.list_segments(session.id, "final")[0].text == "final text"  # its own version
    assert storage.undo_edit(session.id, "live", 1, 0)
    assert storage.list_segments(session.id)[1].text.startswith("The budget for the fiancé")
    assert not storage.undo_edit(session.id, "live", 1, 0)


def test_an_edit_back_to_the_machine_text_or_to_nothing_is_not_an_edit(storage, settings):
    session = seeded(storage, settings)
    storage.edit_segment(session.id, "live", 1, 0, "  " + WRONG.replace(" ", "  ") + " ")
    assert not any(s.edited for s in storage.list_segments(session.id))
    try:
        storage.edit_segment(session.id, "live", 1, 0, "   ")
    except Exception as exc:
        assert "cannot be empty" in str(exc)
    else:
        raise AssertionError("an empty line was accepted")


def test_deleting_a_session_deletes_its_edits(storage, settings):
    session = seeded(storage, settings)
    storage.edit_segment(session.id, "live", 1, 0, RIGHT)
    storage.delete_session(session.id)
    assert storage.cursor().execute("SELECT count(*) FROM segment_edits").fetchone()[0] == 0
