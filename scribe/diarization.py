"""Speaker labels on stored sessions: live per chunk, whole-session after stop, merge/split.

A chunk's voice windows are measured once, by the worker that transcribed it or
here, and kept in the `voice_windows` table: every later labelling reads them.

Live: each settled chunk's windows are matched against the session's speaker
centroids (stored in the `speakers` table, so a resumed session or a restarted app
continues with the same voices); a voice far from all of them becomes a new
speaker, numbered next once it speaks a line. After stop (and after the final
pass, so both transcripts get labels), the whole recording's windows are
clustered again with the user's speaker count when given; speakers
are numbered 1..N in the order they first speak, and each keeps the name a
person gave the live speaker it overlaps most.

Threads: the pipeline's events arrive on worker threads and only queue work;
one daemon thread `scribe-speakers` does it, one chunk at a time (~10 ms of CPU
per second of audio it measures; stored windows cost next to nothing). Speaker
ids are 1..N within a session; names live in the `speakers` table and `Storage`
puts them on every segment it reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from scribe import speakers as sp
from scribe import voices
from scribe.audio import SAMPLE_RATE, read_flac
from scribe.background import RequestThread
from scribe.core import FINAL, LIVE, ChunkRow, PackedWindows, SegmentRow, SpeakerRow, Word, words_text
from scribe.core import default_speaker_name as default_name
from scribe.errors import AudioDecodeError, NotFoundError, ScribeError
from scribe.storage import Storage

log = logging.getLogger("scribe.diarization")

Assignment = tuple[str, int, int, "int | None"]
Line = tuple[SegmentRow, "int | None"]
"""A line to store and the speaker (voice index or id) who says it."""

MIN_TURN_WORDS = 2
"""Fewer words than this between two cuts are not a turn of their own: the labels blur over
~0.4 s at a change, so one word there takes the speaker of its neighbours."""


def label_segments(segments: list[SegmentRow], labels: np.ndarray, *, offset_ms: int = 0) -> list[Assignment]:
    """(transcript, seq, idx, speaker id) for each segment, by the frames it overlaps."""
    return [(s.transcript, s.seq, s.idx, sp.speaker_for_span(labels, s.start_ms, s.end_ms, offset_ms=offset_ms))
            for s in segments]


def cut_at_speaker_changes(segments: list[SegmentRow], labels: np.ndarray, *,
                           offset_ms: int = 0) -> tuple[list[Line], bool]:
    """Each segment as lines of one speaker: a segment whose words change speaker is cut
    between those words. Segments without word times (Gemini) or with a person's correction
    stay whole and take the speaker they overlap most. Returns the lines (each cut piece keeps
    its segment's `idx`) and whether anything was cut."""
    lines: list[Line] = []
    for seg in segments:
        runs = _speaker_runs(seg, labels, offset_ms)
        if len(runs) < 2:
            lines.append((seg, sp.speaker_for_span(labels, seg.start_ms, seg.end_ms, offset_ms=offset_ms)))
            continue
        for n, (voice, words) in enumerate(runs):
            start = seg.start_ms if n == 0 else max(seg.start_ms, _ms(words[0].start))
            end = seg.end_ms if n == len(runs) - 1 else min(seg.end_ms, max(start, _ms(words[-1].end)))
            lines.append((replace(seg, start_ms=start, end_ms=end, text=words_text(words), words=list(words)),
                          voice))
    return lines, len(lines) > len(segments)


def _speaker_runs(seg: SegmentRow, labels: np.ndarray, offset_ms: int) -> list[tuple[int | None, list[Word]]]:
    """The segment's words grouped into runs of one speaker; runs shorter than MIN_TURN_WORDS
    join the longer neighbour. One run (or none) when it cannot or need not be cut."""
    if seg.edited or not seg.words or words_text(seg.words).split() != seg.text.split():
        return []
    runs: list[tuple[int | None, list[Word]]] = []
    for word in seg.words:
        voice = sp.speaker_for_span(labels, _ms(word.start), _ms(word.end), offset_ms=offset_ms)
        if runs and (voice is None or voice == runs[-1][0]):
            runs[-1][1].append(word)
        else:
            runs.append((voice, [word]))
    while len(runs) > 1:
        n = min(range(len(runs)), key=lambda i: len(runs[i][1]))
        if len(runs[n][1]) >= MIN_TURN_WORDS and runs[0][0] is not None:
            break
        if runs[0][0] is None:
            n = 0
        into = n - 1 if n == len(runs) - 1 or (n > 0 and len(runs[n - 1][1]) >= len(runs[n + 1][1])) else n + 1
        merged = runs[min(n, into)][1] + runs[max(n, into)][1]
        runs[min(n, into):max(n, into) + 1] = [(runs[into][0], merged)]
        runs = _join_same(runs)
    return runs


def _join_same(runs: list[tuple[int | None, list[Word]]]) -> list[tuple[int | None, list[Word]]]:
    out: list[tuple[int | None, list[Word]]] = []
    for voice, words in runs:
        if out and out[-1][0] == voice:
            out[-1] = (voice, out[-1][1] + words)
        else:
            out.append((voice, list(words)))
    return out


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _apply(lines: list[Line], ids: "np.ndarray | list[int | None]") -> tuple[list[Assignment], list[SegmentRow]]:
    """Lines labelled with voice indexes -> (assignments by segment, the lines with speaker ids)."""
    labelled = [replace(row, speaker_id=None if v is None else _int_or_none(ids[v])) for row, v in lines]
    return [(r.transcript, r.seq, r.idx, r.speaker_id) for r in labelled], labelled


def _int_or_none(value) -> int | None:
    return None if value is None or value < 0 else int(value)


# -- live -------------------------------------------------------------------------------

def label_chunk(storage: Storage, session_id: str, seq: int, *, max_speakers: int = 8,
                encoder: sp.VoiceEncoder | None = None) -> list[Assignment]:
    """Label one settled chunk's live segments against the session's speakers."""
    chunk = storage.get_chunk(session_id, seq)
    segments = storage.list_segments(session_id, LIVE, seq=seq)
    if not segments:
        return []
    windows = chunk_windows(storage, chunk, encoder)
    if windows is None or not len(windows):
        return []
    known = storage.list_speakers(session_id)
    ids = [s.id for s in known]
    centroids = [np.asarray(s.centroid, dtype=np.float64) for s in known]
    weights = [s.seconds for s in known]
    expected = (storage.diarization_state(session_id) or {}).get("expected_speakers")
    picks = sp.assign_online(windows.embeddings, windows.seconds, centroids, weights,
                             max_speakers=expected or max_speakers)
    # Lines take a voice by index first; voices are numbered once we know who spoke a line.
    lines, was_cut = cut_at_speaker_changes(segments, sp.frame_labels(windows, np.array(picks)),
                                            offset_ms=chunk.start_ms)
    numbered = _number_new_voices(ids, len(centroids), [v for _, v in lines])
    assignments, labelled = _apply(lines, numbered)
    names = {s.id: s.name for s in known}
    rows = [SpeakerRow(session_id, sid, names.get(sid, default_name(sid)), list(map(float, c)), w)
            for sid, c, w in zip(numbered, centroids, weights) if sid is not None]
    storage.save_speakers(session_id, rows, _whole(assignments) if was_cut else assignments, stage=LIVE,
                          cut=labelled if was_cut else ())
    voices.recognise(storage, session_id)
    return assignments


def _whole(assignments: list[Assignment]) -> list[Assignment]:
    """Per segment, the speaker of its first line: what stays when a cut cannot be stored."""
    seen: dict[tuple[str, int, int], int | None] = {}
    for t, seq, idx, v in assignments:
        seen.setdefault((t, seq, idx), v)
    return [(t, seq, idx, v) for (t, seq, idx), v in seen.items()]


def _number_new_voices(known_ids: list[int], n_voices: int, spoken: list[int | None]) -> list[int | None]:
    """An id per voice index: known voices keep theirs; a new voice that speaks a line gets
    the next number, in the order the lines come; one that won no line (a short overlap, a
    turn's edge) gets None and is not kept, so people see Speaker 1, 2, 3 without gaps."""
    ids: list[int | None] = list(known_ids) + [None] * (n_voices - len(known_ids))
    next_id = max(known_ids, default=0) + 1
    for voice in spoken:
        if voice is not None and ids[voice] is None:
            ids[voice] = next_id
            next_id += 1
    return ids


# -- after stop --------------------------------------------------------------------------

def speaker_table(storage: Storage, session_id: str) -> list[dict]:
    """The session's speakers (id, name, segments, seconds) in the transcript a reader sees
    (the final one when there is one): what `speakers` prints and `/api/.../speakers` answers."""
    from scribe.history import choose_transcript

    return storage.speaker_stats(session_id, choose_transcript(storage, session_id)[0])


def relabel_session(storage: Storage, session_id: str, *, n_speakers: int | None = None,
                    max_speakers: int = 8, encoder: sp.VoiceEncoder | None = None) -> list[SpeakerRow]:
    """Cluster the whole recording and relabel every transcript of the session.

    `n_speakers` (else the count stored for the session, else estimated) fixes the
    number of voices. Speakers are numbered by first turn; names people gave the live
    speakers stay with the voices they overlap most.
    """
    state = storage.diarization_state(session_id) or {}
    n_speakers = n_speakers or state.get("expected_speakers")
    windows = session_windows(storage, session_id, encoder)
    clusters = sp.label_windows(windows, n_speakers, max_speakers=max_speakers)
    frames = sp.frame_labels(windows, clusters)
    segments = [s for name in (LIVE, FINAL) for s in storage.list_segments(session_id, name)]
    known = {s.id: s for s in storage.list_speakers(session_id)}
    n_clusters = int(clusters.max()) + 1 if clusters.size else 0
    ids = list(range(1, n_clusters + 1))  # clusters are numbered by first turn: no gaps
    rows = []
    for cluster, live_id in enumerate(_inherit_ids(frames, segments, n_clusters)):
        members = clusters == cluster
        centroid = sp.mean_voice(windows.embeddings[members], windows.seconds[members])
        rows.append(SpeakerRow(session_id, ids[cluster], _kept_name(known.get(live_id), ids[cluster]),
                               list(map(float, centroid)), float(windows.seconds[members].sum())))
    id_of = np.array(ids or [0])
    by_id = np.where(frames >= 0, id_of[np.clip(frames, 0, None)], -1)
    assignments = label_segments(segments, by_id)
    cut = [row for chunk in _by_chunk(segments) for row in _cut_chunk(chunk, by_id)]
    storage.save_speakers(session_id, rows, assignments, stage=FINAL, replace_all=True, cut=cut)
    voices.recognise(storage, session_id)
    log.info("session=%s speakers: %d voices over %.1f s", session_id, len(rows),
             windows.speech.size * sp.FRAME_MS / 1000)
    return rows


def _by_chunk(segments: list[SegmentRow]) -> list[list[SegmentRow]]:
    chunks: dict[tuple[str, int], list[SegmentRow]] = {}
    for seg in segments:
        chunks.setdefault((seg.transcript, seg.seq), []).append(seg)
    return list(chunks.values())


def _cut_chunk(segments: list[SegmentRow], by_id: np.ndarray) -> list[SegmentRow]:
    """One chunk's lines with speaker ids when a segment in it was cut; else none."""
    lines, was_cut = cut_at_speaker_changes(segments, by_id)
    return [replace(row, speaker_id=v) for row, v in lines] if was_cut else []


def session_windows(storage: Storage, session_id: str, encoder: sp.VoiceEncoder | None = None) -> sp.Windows:
    """Voice windows over the whole session, chunk by chunk (a window never spans two chunks):
    the stored ones, and only the chunks without them are read and embedded (one chunk's audio
    in memory at a time, however long the meeting)."""
    chunks = storage.list_chunks(session_id)
    stored = storage.voice_windows(session_id)
    parts = [_stored_or_measured(storage, chunk, encoder, stored.get(chunk.seq)) for chunk in chunks]
    total_ms = max((c.end_ms for c in chunks), default=0)
    return sp.join_windows([p for p in parts if p is not None], total_ms // sp.FRAME_MS)


def chunk_windows(storage: Storage, chunk: ChunkRow, encoder: sp.VoiceEncoder | None = None) -> sp.Windows | None:
    """A chunk's voice windows: the stored ones, else measured from its audio and stored for
    every later labelling. None when none are stored and its audio is unreadable."""
    stored = storage.voice_windows(chunk.session_id, chunk.seq).get(chunk.seq)
    return _stored_or_measured(storage, chunk, encoder, stored)


def _stored_or_measured(storage: Storage, chunk: ChunkRow, encoder: sp.VoiceEncoder | None,
                        stored: PackedWindows | None) -> sp.Windows | None:
    if stored is not None:
        return sp.unpack_windows(stored)
    audio = _chunk_audio(chunk)
    if audio is None:
        return None
    windows = sp.embed_windows(audio, encoder, offset_ms=chunk.start_ms)
    _store_windows(storage, chunk, windows)
    return windows


def _store_windows(storage: Storage, chunk: ChunkRow, windows: sp.Windows) -> None:
    try:
        storage.save_voice_windows(chunk.session_id, chunk.seq, sp.pack_windows(windows))
    except Exception as exc:  # stored windows only save work: the labels stand without them
        log.warning("session=%s seq=%d voice windows not stored (%s)", chunk.session_id, chunk.seq, exc)


def _chunk_audio(chunk) -> np.ndarray | None:
    try:
        return read_flac(Path(chunk.audio_path))
    except (AudioDecodeError, OSError, RuntimeError) as exc:
        log.warning("session=%s seq=%d audio unreadable (%s); no speaker labels there",
                    chunk.session_id, chunk.seq, exc)
        return None


def _kept_name(live: SpeakerRow | None, speaker_id: int) -> str:
    """A name a person gave the live speaker stays with its voice; a default name follows
    the new number."""
    if live is None or live.name == default_name(live.id):
        return default_name(speaker_id)
    return live.name


def _inherit_ids(frames: np.ndarray, segments: list[SegmentRow], n_clusters: int) -> list[int]:
    """The live speaker id each cluster overlaps most (each id used once), else an id no live
    speaker has. So a relabel keeps the names people already gave."""
    overlap: dict[tuple[int, int], int] = {}
    for seg in segments:
        if seg.transcript != LIVE or seg.speaker_id is None:
            continue
        part = frames[seg.start_ms // sp.FRAME_MS:max(seg.start_ms // sp.FRAME_MS + 1, seg.end_ms // sp.FRAME_MS)]
        for cluster, count in zip(*np.unique(part[part >= 0], return_counts=True)):
            key = (int(cluster), seg.speaker_id)
            overlap[key] = overlap.get(key, 0) + int(count)
    ids: dict[int, int] = {}
    for (cluster, sid), _ in sorted(overlap.items(), key=lambda kv: -kv[1]):
        if cluster not in ids and sid not in ids.values():
            ids[cluster] = sid
    free = (n for n in range(1, 10_000) if n not in ids.values())
    return [ids[c] if c in ids else next(free) for c in range(n_clusters)]


def split_speaker(storage: Storage, session_id: str, speaker_id: int, *,
                  encoder: sp.VoiceEncoder | None = None) -> int:
    """Split one speaker in two: its segments are clustered by voice into two groups and
    the group that speaks later becomes a new speaker. Returns the new speaker's id."""
    segments = storage.speaker_segments(session_id, speaker_id)
    if len({(s.start_ms, s.end_ms) for s in segments}) < 2:
        raise ScribeError(f"speaker {speaker_id} has fewer than two segments; nothing to split")
    vectors, seconds = _segment_voices(storage.list_chunks(session_id), segments, encoder)
    usable = [n for n, v in enumerate(vectors) if v is not None]
    if len(usable) < 2:
        raise ScribeError(f"speaker {speaker_id} has too little speech to split")
    groups, centroids = sp.spherical_kmeans(np.array([vectors[n] for n in usable]), 2,
                                            weights=np.array([seconds[n] for n in usable]))
    group_of = {usable[i]: int(g) for i, g in enumerate(groups)}
    stay = group_of[usable[0]]  # the voice that speaks first keeps the id and the name
    later = 1 - stay
    known = storage.list_speakers(session_id)
    new_id = max(s.id for s in known) + 1
    old = next((s for s in known if s.id == speaker_id), None)
    if old is None:
        raise NotFoundError(f"no speaker {speaker_id} in session {session_id!r}")
    moved = [(s.transcript, s.seq, s.idx, new_id) for n, s in enumerate(segments) if group_of.get(n) == later]
    new_seconds = sum(seconds[n] for n in usable if group_of[n] == later)
    rows = [SpeakerRow(session_id, speaker_id, old.name, list(map(float, centroids[stay])),
                       max(0.0, old.seconds - new_seconds)),
            SpeakerRow(session_id, new_id, default_name(new_id), list(map(float, centroids[later])), new_seconds)]
    stage = (storage.diarization_state(session_id) or {}).get("stage", FINAL)
    storage.save_speakers(session_id, rows, moved, stage=stage)
    return new_id


def _segment_voices(chunks, segments: list[SegmentRow],
                    encoder: sp.VoiceEncoder | None) -> tuple[list[np.ndarray | None], list[float]]:
    """One unit voice vector per segment (None when it has no window of speech)."""
    vectors: list[np.ndarray | None] = []
    seconds: list[float] = []
    cache: dict[int, np.ndarray | None] = {}
    for seg in segments:
        piece = _span_audio(chunks, cache, seg.start_ms, seg.end_ms)
        windows = sp.embed_windows(piece, encoder) if piece.size else None
        if windows is None or not len(windows):
            vectors.append(None)
            seconds.append(0.0)
            continue
        vectors.append(sp.mean_voice(windows.embeddings, windows.seconds))
        seconds.append(float(windows.seconds.sum()))
    return vectors, seconds


def _span_audio(chunks, cache: dict, start_ms: int, end_ms: int) -> np.ndarray:
    """The audio of [start, end) from the chunk files it overlaps. Spans come in time order, so
    chunks that end before this one starts leave the cache: memory stays a few chunks."""
    pieces = []
    for chunk in chunks:
        if chunk.end_ms <= start_ms:
            cache.pop(chunk.seq, None)
            continue
        if chunk.start_ms >= end_ms:
            continue
        if chunk.seq not in cache:
            cache[chunk.seq] = _chunk_audio(chunk)
        audio = cache[chunk.seq]
        if audio is None:
            continue
        lo = max(0, (start_ms - chunk.start_ms) * SAMPLE_RATE // 1000)
        hi = max(lo, (end_ms - chunk.start_ms) * SAMPLE_RATE // 1000)
        pieces.append(audio[lo:hi])
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


# -- the thread ----------------------------------------------------------------------------

class SpeakerLabeler(RequestThread[tuple[str, str, int]]):
    """Labels chunks as they settle and relabels each stopped session, on its own thread."""

    thread_name = "scribe-speakers"

    def __init__(self, storage: Storage, *, max_speakers: int = 8,
                 is_idle: Callable[[], bool] = lambda: True, encoder: sp.VoiceEncoder | None = None,
                 poll_seconds: float = 0.5) -> None:
        super().__init__(is_idle=is_idle, poll_seconds=poll_seconds)
        self.storage = storage
        self.max_speakers = max_speakers
        self._encoder = encoder
        self.errors: dict[str, str] = {}
        self.cpu_seconds = 0.0
        """CPU time spent labelling (thread time), for the cost figures."""
        self.handled = 0
        """Requests handled, counted after their writes: the Record page's stored lines are
        read again when it moves (`record_view.stored_mark`), so new labels show at once."""

    def attach(self, pipeline, final_pass=None) -> "SpeakerLabeler":
        """Listen to the pipeline; relabel a stopped session only once its queue and the
        final pass are idle, so the final transcript is labelled too."""
        def idle() -> bool:
            return pipeline.is_idle() and (final_pass is None or final_pass.wait_idle(timeout=0.0))
        self._is_idle = idle
        pipeline.add_listener(self.on_event)
        return self.start()

    def on_event(self, event: str, fields: dict) -> None:
        """Pipeline listener; runs on a worker thread, so it only queues the work."""
        if event == "chunk_done":
            self.put(("chunk", fields["session_id"], int(fields["seq"])))
        elif event == "session_drained":
            self.put(("session", fields["session_id"], -1))

    def request_relabel(self, session_id: str) -> None:
        """Cluster a stopped session again (e.g. after its speaker count was given)."""
        self.put(("session", session_id, -1))

    def handle(self, request: tuple[str, str, int]) -> None:
        kind, session_id, seq = request
        started = time.thread_time()
        try:
            if kind == "chunk":
                label_chunk(self.storage, session_id, seq, max_speakers=self.max_speakers,
                            encoder=self._encoder)
            elif self.wait_for_quiet() and self._stopped(session_id):
                relabel_session(self.storage, session_id, max_speakers=self.max_speakers,
                                encoder=self._encoder)
        except Exception as exc:  # labels are extra: the transcript stands without them
            log.exception("session=%s speaker labels failed", session_id)
            self.errors[session_id] = f"{type(exc).__name__}: {exc}"
        finally:
            self.cpu_seconds += time.thread_time() - started
            self.handled += 1

    def _stopped(self, session_id: str) -> bool:
        session = self.storage.find_session(session_id)
        return session is not None and session.status in ("stopped", "done", "interrupted")
