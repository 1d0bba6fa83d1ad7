"""The intake's promises: a chunk is stored once, durably, in its session's order; alone
and through the pipeline, with a real tmp DuckDB."""

import threading

from test_pipeline import EchoTranscriber, chunk, make_pipeline, new_session, segment_keys

from scribe.health import StorageHealth
from scribe.intake import Intake
from scribe.pipeline_options import PipelineOptions
from scribe.storage import Storage


def make_intake(storage: Storage, tmp_path, **kw) -> tuple[Intake, list[tuple[str, int]]]:
    """An intake with no job queue behind it: `on_stored` records what it was handed."""
    stored: list[tuple[str, int]] = []
    intake = Intake(storage, audio_dir=tmp_path / "audio", health=StorageHealth(),
                    on_stored=lambda c: stored.append((c.session_id, c.seq)), **kw)
    return intake, stored


def test_submit_stores_the_audio_and_a_pending_row_then_hands_it_on_once(storage, tmp_path):
    intake, stored = make_intake(storage, tmp_path)
    sid = new_session(storage)
    assert intake.submit(chunk(sid, 0)) is True
    assert intake.submit(chunk(sid, 0)) is False
    row = storage.get_chunk(sid, 0)
    assert row.status == "pending" and intake.audio_path(sid, 0).is_file()
    assert not intake.audio_path(sid, 0).with_suffix(".json").exists()  # the sidecar went with the row
    assert stored == [(sid, 0)]


def test_writers_store_each_sessions_chunks_in_order_and_spill_past_the_ram_bound(storage, tmp_path):
    intake, stored = make_intake(storage, tmp_path, options=PipelineOptions(
        writer_threads=2, intake_memory_seconds=1.5, intake_session_seconds=1.5))
    gate = threading.Event()
    sid = new_session(storage)
    intake.call_after_intake(lambda: gate.wait(10), sid)  # holds this session's writer
    intake.start()
    for seq in range(4):
        intake.submit_nowait(chunk(sid, seq))
    assert intake.counters()["intake_spilled"] >= 1  # the writer was held: chunks went to disk
    gate.set()
    assert intake.flush_intake(10)
    assert stored == [(sid, seq) for seq in range(4)]
    assert intake.counters()["intake_memory_seconds"] == 0.0
    intake.request_stop()
    intake.join(10)


def test_an_orphan_chunk_file_is_adopted_as_a_pending_row(storage, tmp_path):
    intake, stored = make_intake(storage, tmp_path)
    sid = new_session(storage)
    intake._write_chunk_files(chunk(sid, 3))  # the process died before the row committed
    assert intake.adopt_orphan_audio() == 1
    assert storage.get_chunk(sid, 3).status == "pending" and stored == [(sid, 3)]
    assert intake.adopt_orphan_audio() == 0


def test_resubmitting_a_chunk_is_a_no_op(storage, tmp_path):
    echo = EchoTranscriber()
    pipe = make_pipeline(storage, tmp_path, echo).start()
    sid = new_session(storage)
    assert pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    audio_before = (tmp_path / "audio" / sid / "000000.flac").read_bytes()
    assert not pipe.submit(chunk(sid, 0, seconds=2.0))
    pipe.wait_idle(10)
    assert echo.calls == 1
    assert segment_keys(storage, sid) == [(0, 0), (0, 1)]
    assert (tmp_path / "audio" / sid / "000000.flac").read_bytes() == audio_before
    pipe.stop()


def test_submit_nowait_makes_chunks_durable_on_the_writer_thread(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    for seq in range(10):
        pipe.submit_nowait(chunk(sid, seq))
    assert pipe.wait_idle(10)
    assert storage.chunk_counts(sid)["done"] == 10
    pipe.stop()


def test_several_writers_keep_each_sessions_chunks_and_end_in_order(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), writer_threads=3).start()
    sessions = [new_session(storage) for _ in range(6)]
    seen_at_end: dict[str, int] = {}
    for seq in range(8):
        for sid in sessions:
            pipe.submit_nowait(chunk(sid, seq))
    for sid in sessions:
        pipe.call_after_intake(lambda sid=sid: seen_at_end.__setitem__(sid, len(storage.list_chunks(sid))), sid)
        pipe.finish_session_after_intake(sid, "stopped")
    everything: list[int] = []
    pipe.call_after_intake(lambda: everything.append(sum(len(storage.list_chunks(s)) for s in sessions)))
    assert pipe.wait_idle(30)
    assert seen_at_end == {sid: 8 for sid in sessions}  # each end ran after its own 8 chunks
    assert everything == [48]  # a session-less step ran after every writer's earlier chunks
    assert all(storage.get_session(sid).status == "done" for sid in sessions)
    assert len({t.name for t in pipe.intake._threads if t.name.startswith("scribe-writer")}) == 3
    pipe.stop()
