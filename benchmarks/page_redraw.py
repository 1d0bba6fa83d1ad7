"""What the Record page's redraws cost the server, per person watching a live session.

    HF_HUB_OFFLINE=1 python3 benchmarks/page_redraw.py [--viewers 0 --viewers 4 --viewers 8]
        [--seconds 30] [--rounds 2]
    HF_HUB_OFFLINE=1 python3 benchmarks/page_redraw.py --reads 60 --reads 240
    HF_HUB_OFFLINE=1 python3 benchmarks/page_redraw.py --status-reads 240
    HF_HUB_OFFLINE=1 python3 benchmarks/page_redraw.py --live-reads 40 --live-reads 240

The real app (`streamlit run app.py`; the stub backend, so the chunk lane costs next to
nothing, and partials off, so no decoding: what is left is capture, storage and the pages),
one headless sender streaming espeak-ng speech into the realtime socket for the whole run
(benchmarks/live_latency.py's sender). For each N, N headless Chromium tabs (each its own
browser context, so its own Streamlit session) open the Record page's "Live from the API"
tab and pick that session: each then redraws its transcript, status, chunk table and the
sidebar as the page does while a session records. Once all N show the transcript, the app
process's CPU time (user + system, all threads) is read over `--seconds`. The N values
alternate for `--rounds` rounds, so each meets the same machine. Reported: the app's CPU in
cores per N, and per viewer over the no-viewer run of the same round, and the same for the
kilobytes a second over the loopback interface (what the pages are sent). The browsers run on
the same cores (their CPU is not counted, but competes).

`--reads`: the data part of one transcript redraw alone, in this process (see `read_cost`).
`--status-reads`: the data part of the status line's and the chunk table's once-a-second
redraws, in this process (see `status_cost`).
`--live-reads`: a watched live session's reads over a minute, re-read after 1 s against
`record_view.UNMARKED_CHANGE_S`, in this process (see `live_reads_cost`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import speech  # noqa: E402
from fake_mic import CHROMIUM  # noqa: E402
from live_latency import _cpu_seconds, start_senders  # noqa: E402
from scribe_app import ScribeApp  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]


def watch(browser, url: str):
    """One viewer: a tab on the Record page watching the streamed session."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url, timeout=180_000)
    page.get_by_role("heading", name="Record").wait_for(timeout=180_000)
    page.get_by_role("tab", name="Live from the API").click(timeout=60_000)
    for _attempt in range(10):  # the picker's fragment redraws every 2 s: an option may go stale
        try:
            box = page.get_by_role("combobox", name="Live session")
            box.click(timeout=30_000)
            page.get_by_role("option").nth(1).click(timeout=3_000)  # the first is "Choose a session"
            page.get_by_text("Transcript", exact=True).wait_for(timeout=30_000)
            return page
        except Exception:  # noqa: BLE001 - retried; the last attempt's error is raised below
            page.keyboard.press("Escape")
    raise RuntimeError("the tab never showed the live session")


def app_cores(app: ScribeApp, seconds: float) -> tuple[float, float]:
    """The app process's CPU in cores over `seconds`, and the kilobytes a second that crossed
    the loopback interface meanwhile (the pages' WebSocket messages, as sent; also the sender's
    audio and the tabs' few bytes back, the same whatever the number of viewers)."""
    import psutil

    def loopback() -> int:
        return psutil.net_io_counters(pernic=True)["lo"].bytes_sent

    cpu, sent, started = _cpu_seconds(app.proc.pid), loopback(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return (_cpu_seconds(app.proc.pid) - cpu) / elapsed, (loopback() - sent) / elapsed / 1000


def read_cost(lines: int, repeat: int = 200) -> None:
    """In-process, no browser: CPU milliseconds of one transcript redraw's data (the stored
    lines read from DuckDB and built into the page's text), read and built on every redraw, and
    through `record_view.StoredLines` (every redraw after the first of a change: the text built
    with the shared read is reused, so what is left is the partial lines' filter)."""
    from seed_sessions import seed_session

    from scribe.config import Settings
    from scribe.record_view import StoredLines, StoredText, live_transcript
    from scribe.storage import Storage

    with tempfile.TemporaryDirectory(prefix="scribe-redraw-") as tmp:
        store = Storage(Settings(data_dir=Path(tmp)).db)
        session = seed_session(store, Path(tmp), [(None, f"line {k} of a meeting that goes on for a while")
                                                  for k in range(lines)], title="reads", created_at=1.0)
        stored = StoredLines()
        for name, view in (("read directly", lambda: StoredText.of(store.list_segments(session.id))),
                           ("through StoredLines", lambda: stored.transcript(store, session.id, (1, 0, 0)))):
            live_transcript(view(), [])
            began = time.process_time()
            for _ in range(repeat):
                live_transcript(view(), [])
            print(f"{lines} stored lines, {name}: {(time.process_time() - began) / repeat * 1000:.3f} ms CPU "
                  f"per redraw (load average {os.getloadavg()[0]:.1f})")
        store.close()


def seed_long_session(store, chunks: int, segments_per_chunk: int):
    """A session of `chunks` stored chunks of 15 s, each holding `segments_per_chunk` lines."""
    from scribe.backends import STAND_IN
    from scribe.core import ChunkRow, SegmentRow

    session = store.create_session(title="status reads", source="mic", backend=STAND_IN, model="m",
                                   chunk_seconds=15, chunk_policy="pause", now=1.0)
    for seq in range(chunks):
        start = seq * 15_000
        store.insert_chunk(ChunkRow(session.id, seq, start, start + 15_000, start * 16, (start + 15_000) * 16,
                                    f"{seq:06d}.flac", "pending", captured_at=float(seq), enqueued_at=float(seq)))
        step = 15_000 // segments_per_chunk
        store.save_segments(session.id, seq, [
            SegmentRow(session.id, seq, k, start + k * step, start + (k + 1) * step,
                       f"line {k} of chunk {seq}, in a meeting that goes on for a while")
            for k in range(segments_per_chunk)], finished_at=seq + 2.0)
    store.end_session(session.id, "stopped", now=chunks * 15.0)
    return store.get_session(session.id)


def status_cost(chunks: int, segments_per_chunk: int = 4, repeat: int = 200) -> None:
    """In-process, no browser: CPU milliseconds of one page's once-a-second data for the
    status line and the chunk table (chunk rows for both, the stored segments' count, the
    status word and the table's rows), read directly from DuckDB on every fragment run, and
    through `record_view.ChunkRows` and `StoredLines` (every run after the first of a change;
    the first of a change is one read of the chunk rows)."""
    from scribe.config import Settings
    from scribe.history import progress_status
    from scribe.record_view import ChunkRows, StoredLines, chunk_table
    from scribe.storage import Storage

    with tempfile.TemporaryDirectory(prefix="scribe-redraw-") as tmp:
        store = Storage(Settings(data_dir=Path(tmp)).db)
        session = seed_long_session(store, chunks, segments_per_chunk)
        rows, lines, mark = ChunkRows(), StoredLines(), [0]

        def directly() -> None:
            progress_status(session, store.list_chunks(session.id), len(store.list_segments(session.id)))
            chunk_table(store.list_chunks(session.id))

        def shared() -> None:
            progress_status(session, rows.chunks(store, session.id, mark[0]), lines.count(store, session.id, 0))
            chunk_table(rows.chunks(store, session.id, mark[0]))

        def first_of_a_change() -> None:
            mark[0] += 1
            shared()

        for name, redraw in (("read directly", directly), ("through ChunkRows, from memory", shared),
                             ("through ChunkRows, first after a change", first_of_a_change)):
            redraw()
            began = time.process_time()
            for _ in range(repeat):
                redraw()
            print(f"{chunks} chunks, {chunks * segments_per_chunk} segments, {name}: "
                  f"{(time.process_time() - began) / repeat * 1000:.2f} ms CPU per second of a page "
                  f"(load average {os.getloadavg()[0]:.1f})")
        store.close()


def live_reads_cost(chunks: int, minutes: float = 1.0) -> None:
    """In-process, no browser: one watched live session's data over `minutes` of simulated time
    (a clock that only this loop moves): the transcript redrawn four times a second, the status
    line and the chunk table once a second each, a chunk stored every 15 s (both marks move).
    Re-reading an unchanged session after 1 s (as before) against `UNMARKED_CHANGE_S`; reported:
    the database reads and the CPU milliseconds per second of session, the same whatever the
    number of viewers (they share these reads)."""
    from scribe.config import Settings
    from scribe.history import progress_status
    from scribe.record_view import UNMARKED_CHANGE_S, ChunkRows, StoredLines, chunk_table, live_transcript
    from scribe.storage import Storage

    with tempfile.TemporaryDirectory(prefix="scribe-redraw-") as tmp:
        store = Storage(Settings(data_dir=Path(tmp)).db)
        session = seed_long_session(store, chunks, 4)
        for max_age in (1.0, UNMARKED_CHANGE_S):
            now = [0.0]
            rows, lines = ChunkRows(max_age, clock=lambda: now[0]), StoredLines(max_age, clock=lambda: now[0])
            began = time.process_time()
            for tick in range(int(minutes * 60 * 4)):
                now[0] = tick / 4
                mark = int(now[0] // 15)  # a chunk stored every 15 s
                live_transcript(lines.transcript(store, session.id, mark), [])
                if tick % 4 == 0:
                    chunk_rows = rows.chunks(store, session.id, mark)
                    progress_status(session, chunk_rows, lines.count(store, session.id, mark))
                    chunk_table(rows.chunks(store, session.id, mark))
            seconds = minutes * 60
            print(f"{chunks} chunks, re-read after {max_age:g} s: {(rows.reads + lines.reads) / seconds:.2f} reads and "
                  f"{(time.process_time() - began) / seconds * 1000:.2f} ms CPU per second of a watched session "
                  f"(load average {os.getloadavg()[0]:.1f})")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, action="append", help="tabs watching (default 0, 4, 8)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reads", type=int, action="append",
                        help="only the in-process cost of one redraw's data, for a session of this many lines")
    parser.add_argument("--status-reads", type=int, action="append", metavar="CHUNKS",
                        help="only the in-process cost of the status line's and chunk table's data, "
                             "for a session of this many chunks (four segments each)")
    parser.add_argument("--live-reads", type=int, action="append", metavar="CHUNKS",
                        help="only the in-process cost of a watched live session's reads over a minute, "
                             "for a session of this many chunks")
    args = parser.parse_args()
    if args.reads or args.status_reads or args.live_reads:
        for lines in args.reads or []:
            read_cost(lines)
        for chunks in args.status_reads or []:
            status_cost(chunks)
        for chunks in args.live_reads or []:
            live_reads_cost(chunks)
        return
    counts = args.viewers or [0, 4, 8]
    turns, _ = speech.meeting_audio(speech.MEETING_TURNS, gap_s=0.9)
    audio = np.tile(turns, 10)  # ten minutes: longer than the run
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="scribe-redraw-") as tmp:
        app = ScribeApp(Path(tmp) / "data", Path(tmp) / "app.log", SCRIBE_PARTIALS="false")
        cores: dict[int, list[float]] = {n: [] for n in counts}
        sent_kb: dict[int, list[float]] = {n: [] for n in counts}
        try:
            start_senders(app.url, [audio])
            time.sleep(5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                for _round in range(args.rounds):
                    for n in counts:
                        pages = [watch(browser, app.url) for _ in range(n)]
                        time.sleep(2)
                        used, sent = app_cores(app, args.seconds)
                        cores[n].append(used)
                        sent_kb[n].append(sent)
                        print(f"{n} viewer(s): app {used:.3f} cores, {sent:.1f} KB/s over loopback, "
                              f"load average {os.getloadavg()[0]:.1f}", flush=True)
                        for page in pages:
                            page.context.close()
                browser.close()
        finally:
            app.stop()
    base = statistics.median(cores[0]) if 0 in cores else 0.0
    base_kb = statistics.median(sent_kb[0]) if 0 in sent_kb else 0.0
    print(f"{'viewers':>8}{'app cores (median)':>20}{'per viewer':>12}{'loopback KB/s':>15}{'per viewer':>12}")
    for n in counts:
        median, kb = statistics.median(cores[n]), statistics.median(sent_kb[n])
        each = f"{(median - base) / n:.3f}" if n else "-"
        each_kb = f"{(kb - base_kb) / n:.1f}" if n else "-"
        print(f"{n:>8}{median:>20.3f}{each:>12}{kb:>15.1f}{each_kb:>12}")


if __name__ == "__main__":
    main()
