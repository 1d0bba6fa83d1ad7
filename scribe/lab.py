"""The chunking lab: run chunking policies over one recording and score them.

Each policy runs through the real path (decode -> Chunker -> Pipeline ->
backend -> hallucination guard -> DuckDB) on a scratch in-memory database and
a temporary audio folder, so lab runs never show up as sessions. The scores:

- `wer`: word error rate against the reference (jiwer, Whisper's English
  normalizer; a fraction, 0.1 = 10 %);
- `words_lost` / `words_duplicated`: deletions and substitutions / insertions
  that the alignment places within `BOUNDARY_WORDS` words of a chunk junction
  (`boundary_errors` is their sum);
- `latency_s`: what a listener waits for text, per chunk the chunk's length
  plus its processing time, averaged over chunks (queue wait excluded: the lab
  submits everything at once, which live audio never does);
- `calls`: backend calls, retries included; `cost_usd`: estimated from tokens.

Results go to the app's DuckDB (`lab_runs`) for later comparison.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import jiwer

from scribe import backends
from scribe.audio import SAMPLE_RATE, write_flac_atomic
from scribe.chunking import parse_policy, policy_label
from scribe.core import FINAL, LIVE, ChunkRow
from scribe.errors import ScribeError
from scribe.final_pass import session_audio
from scribe.gemini_client import AUDIO_TOKENS_PER_SECOND
from scribe.hallucination import SegmentFilter, guard_segments
from scribe.identity import Principal
from scribe.ingest import ingest_file, wait_for_session
from scribe.noisy_context import NoisyContext
from scribe.pipeline import Pipeline, PipelineHooks, PipelineOptions
from scribe.storage import Storage
from scribe.timelabels import local_datetime
from scribe.transcribers.base import Transcriber
from scribe.wer import normalize, word_error_rate

log = logging.getLogger("scribe.lab")

DEFAULT_POLICIES = ("whole", "fixed:15", "pause:15")
PRESET_POLICIES = ("whole", "fixed:15", "quiet:15", "pause:15", "fixed:5", "pause:5", "pause:10", "pause:20",
                   "fixed:30")
"""The lab page's ready-made choices (any other spec can be typed in)."""
BOUNDARY_WORDS = 2
"""How near a chunk junction (in hypothesis words) an error counts as a boundary error."""
DEMO_DIR = Path(__file__).parent / "demo"
JSON_KEYS = ("policy", "wer", "chunks", "boundary_errors", "latency_s", "calls",
             "mean_chunk_s", "processing_s", "words_lost", "words_duplicated", "cost_usd")
"""The `eval --json` run keys, in order. Stable: add new keys only at the end."""

Progress = Callable[[float, str], object]
"""Told (fraction done, message); whatever it returns is ignored (a page may hand in a widget call)."""
"""Called with (fraction 0..1, message) on the thread running the lab."""


@dataclass
class PolicyRun:
    """One policy's scores on one recording."""

    policy: str
    wer: float
    chunks: int
    mean_chunk_s: float
    latency_s: float
    processing_s: float
    calls: int
    cost_usd: float
    words_lost: int
    words_duplicated: int
    reference_words: int
    audio_seconds: float
    backend: str
    model: str
    hypothesis: str

    @property
    def boundary_errors(self) -> int:
        return self.words_lost + self.words_duplicated

    def as_json(self) -> dict:
        values = {**asdict(self), "boundary_errors": self.boundary_errors}
        return {key: values[key] for key in JSON_KEYS}


def demo_recording() -> tuple[Path, str]:
    """The built-in demo (espeak-ng, three voices) and its reference text."""
    audio = DEMO_DIR / "meeting.ogg"
    if not audio.is_file():
        raise ScribeError(f"the demo recording {audio} is missing from this install")
    return audio, (DEMO_DIR / "meeting.txt").read_text(encoding="utf-8")


def read_reference(path: str | Path) -> str:
    """A reference transcript file as text; refuses an empty one."""
    path = Path(path)
    if not path.is_file():
        raise ScribeError(f"{path}: no such reference file")
    text = path.read_text(encoding="utf-8", errors="replace")
    check_reference(text)
    return text


def check_reference(text: str) -> None:
    if not normalize(text):
        raise ScribeError("the reference transcript has no words")


def run_eval(audio: str | Path, reference: str, policies: Sequence[str] = DEFAULT_POLICIES, *,
             transcriber: Transcriber, results: Storage | None = None, label: str | None = None,
             segment_filter: SegmentFilter | None = guard_segments,
             progress: Progress | None = None, context_seconds: float = 0.0) -> list[PolicyRun]:
    """Run each policy over the recording; store the runs in `results` if given.

    Blocks the calling thread (the CLI's, or the page's script thread) until
    every policy has run. Bad policy names fail before any audio is processed.
    """
    check_reference(reference)
    specs = [policy_label(parse_policy(spec)) for spec in policies]
    experiment = uuid.uuid4().hex[:12]
    runs = []
    for n, spec in enumerate(specs):
        def step(fraction: float, message: str, n=n, spec=spec) -> None:
            if progress:
                progress((n + fraction) / len(specs), f"{spec}: {message}")
        run = run_policy(audio, reference, spec, transcriber=transcriber,
                         segment_filter=segment_filter, progress=step, context_seconds=context_seconds)
        runs.append(run)
        if results is not None:
            results.save_lab_run(_lab_row(run, experiment, label or Path(audio).name))
    if progress:
        progress(1.0, "done")
    return runs


def run_policy(audio: str | Path, reference: str, spec: str, *, transcriber: Transcriber,
               segment_filter: SegmentFilter | None = guard_segments,
               progress: Progress | None = None, context_seconds: float = 0.0) -> PolicyRun:
    """One policy through the real pipeline, on a scratch database and audio folder.

    `context_seconds`: noisy chunks are heard with that much of the previous chunk."""
    policy = parse_policy(spec)
    with tempfile.TemporaryDirectory(prefix="scribe-lab-") as tmp:
        storage = Storage(":memory:")
        options = PipelineOptions(max_attempts=3, retry_base_seconds=0.5, retry_max_seconds=5.0)
        pipeline = Pipeline(storage, transcriber, audio_dir=Path(tmp), options=options,
                            hooks=PipelineHooks(context=NoisyContext(context_seconds),
                                                segment_filter=segment_filter)).start()
        try:
            result = ingest_file(audio, storage=storage, pipeline=pipeline, policy=policy,
                                 title=spec, source="lab")
            wait_for_session(storage, result.session.id, progress=progress)
            chunks = storage.list_chunks(result.session.id)
            texts = _chunk_texts(storage, result.session.id, chunks)
        finally:
            pipeline.stop()
            storage.close()
    return score(spec, reference, chunks, texts, transcriber)


def _chunk_texts(storage: Storage, session_id: str, chunks: list[ChunkRow]) -> list[str]:
    by_seq: dict[int, list[str]] = {c.seq: [] for c in chunks}
    for seg in storage.list_segments(session_id, LIVE):
        by_seq.setdefault(seg.seq, []).append(seg.text)
    return [" ".join(by_seq[c.seq]) for c in chunks]


def score(spec: str, reference: str, chunks: list[ChunkRow], texts: list[str],
          transcriber: Transcriber) -> PolicyRun:
    """Scores for one run from its chunk rows and each chunk's text (in order)."""
    durations = [(c.end_sample - c.start_sample) / SAMPLE_RATE for c in chunks]
    processing = [(c.finished_at or 0) - (c.started_at or 0) for c in chunks if c.finished_at and c.started_at]
    hypothesis = " ".join(t for t in texts if t)
    lost, duplicated = boundary_errors(reference, texts)
    n = max(len(chunks), 1)
    return PolicyRun(
        policy=spec, wer=round(word_error_rate(reference, hypothesis), 4), chunks=len(chunks),
        mean_chunk_s=round(sum(durations) / n, 2),
        latency_s=round((sum(durations) + sum(processing)) / n, 2),
        processing_s=round(sum(processing), 2), calls=sum(c.attempts for c in chunks),
        cost_usd=round(run_cost(transcriber.name, str(transcriber.model), chunks), 6), words_lost=lost,
        words_duplicated=duplicated, reference_words=len(normalize(reference).split()),
        audio_seconds=round(sum(durations), 2), backend=transcriber.name,
        model=str(transcriber.model), hypothesis=hypothesis)


def boundary_errors(reference: str, chunk_texts: Sequence[str]) -> tuple[int, int]:
    """(words lost, words duplicated) within BOUNDARY_WORDS of a chunk junction.

    The hypothesis is the chunks' normalized words in order; an alignment against
    the reference marks deletions/substitutions (lost or split words) and
    insertions (words transcribed twice, or split words' halves). Only those
    touching a junction count: errors mid-chunk are the model's, not the cut's.
    """
    words = [normalize(t).split() for t in chunk_texts]
    junctions, total = [], 0
    for chunk_words in words[:-1]:
        total += len(chunk_words)
        junctions.append(total)
    ref = normalize(reference)
    hyp = " ".join(w for chunk_words in words for w in chunk_words)
    if not junctions or not ref:
        return 0, 0
    lost = duplicated = 0
    for op in jiwer.process_words(ref, hyp or "").alignments[0]:
        if op.type == "equal" or not _near(op.hyp_start_idx, op.hyp_end_idx, junctions):
            continue
        if op.type == "insert":
            duplicated += op.hyp_end_idx - op.hyp_start_idx
        else:
            lost += op.ref_end_idx - op.ref_start_idx
    return lost, duplicated


def _near(start: int, end: int, junctions: list[int]) -> bool:
    return any(start - BOUNDARY_WORDS <= j <= end + BOUNDARY_WORDS for j in junctions)


def run_cost(backend: str, model: str, chunks: Sequence[ChunkRow]) -> float:
    """USD for a run: zero for a backend the registry does not meter; metered (Gemini) chunks priced by `backends.estimate_cost`
    (the one price table) from their reported tokens, or for a call that reported none, its
    audio's tokens per attempt. A model the table does not know counts as zero (and is logged)."""
    if backend not in backends.metered():
        return 0.0
    cost, unpriced = 0.0, set()
    for c in chunks:
        seconds = (c.end_sample - c.start_sample) / SAMPLE_RATE
        inputs = c.input_tokens or round(seconds * AUDIO_TOKENS_PER_SECOND) * max(c.attempts, 1)
        dollars = backends.estimate_cost(backend, c.model or model, inputs, c.output_tokens, audio=True)
        if dollars is None:
            unpriced.add(c.model or model)
        cost += dollars or 0.0
    if unpriced:
        log.warning("no price known for %s; counted as 0 in the lab's cost", ", ".join(sorted(unpriced)))
    return cost


def _lab_row(run: PolicyRun, experiment: str, label: str) -> dict:
    return {"experiment": experiment, "audio_label": label, "audio_seconds": run.audio_seconds,
            "policy": run.policy, "backend": run.backend, "model": run.model, "wer": run.wer,
            "chunks": run.chunks, "mean_chunk_s": run.mean_chunk_s, "latency_s": run.latency_s,
            "processing_s": run.processing_s, "calls": run.calls, "cost_usd": run.cost_usd,
            "words_lost": run.words_lost, "words_duplicated": run.words_duplicated,
            "reference_words": run.reference_words, "hypothesis": run.hypothesis}


# -- stored sessions ----------------------------------------------------------
def export_session_audio(storage: Storage, session_id: str, folder: Path) -> Path:
    """A stored session's recording (rebuilt from its chunks) as a FLAC file in `folder`."""
    audio = session_audio(storage, session_id)
    if audio.size == 0:
        raise ScribeError(f"session {session_id} has no audio")
    path = Path(folder) / f"{session_id}.flac"
    write_flac_atomic(audio, path)
    return path


def transcript_wers(storage: Storage, session_id: str, reference: str) -> dict[str, float | None]:
    """WER of a session's live and final transcripts (None where it has none)."""
    check_reference(reference)
    out: dict[str, float | None] = {}
    for kind in (LIVE, FINAL):
        text = storage.session_text(session_id, kind)
        out[kind] = round(word_error_rate(reference, text), 4) if text.strip() else None
    return out


def runs_json(runs: Sequence[PolicyRun]) -> str:
    """The `eval --json` document."""
    return json.dumps({"runs": [r.as_json() for r in runs]}, indent=2)


# -- for the lab page -------------------------------------------------------------
def save_upload(data: bytes, name: str, folder: Path | None = None) -> Path:
    """An uploaded recording as a file the decoder can open (kept until the process ends)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="scribe-lab-upload-"))
    path = folder / (Path(name).name or "upload")
    path.write_bytes(data)
    return path


def runs_table(runs: Sequence[PolicyRun]) -> list[dict]:
    """Rows for a results table, with units in the column names."""
    return [{"policy": r.policy, "WER %": round(r.wer * 100, 1), "chunks": r.chunks,
             "mean chunk (s)": r.mean_chunk_s, "listener latency (s)": r.latency_s,
             "words lost at cuts": r.words_lost, "words duplicated at cuts": r.words_duplicated,
             "backend calls": r.calls, "est. cost (USD)": r.cost_usd} for r in runs]


class OwnedResults:
    """Where `run_eval` stores runs for a page: `storage`, as `owner_id`'s runs."""

    def __init__(self, storage: Storage, owner_id: str) -> None:
        self.storage, self.owner_id = storage, owner_id

    def save_lab_run(self, run: dict) -> None:
        self.storage.save_lab_run(run, owner_id=self.owner_id)


def stored_runs_table(storage: Storage, limit: int = 200, visible_to: Principal | None = None) -> list[dict]:
    """Previous runs from DuckDB, newest first, for the history table (`visible_to`'s own)."""
    return [{"when": local_datetime(r["created_at"]),
             "recording": r["audio_label"], "policy": r["policy"], "backend": r["backend"],
             "WER %": round(r["wer"] * 100, 1), "chunks": r["chunks"],
             "listener latency (s)": r["latency_s"], "words lost": r["words_lost"],
             "words dup": r["words_duplicated"], "experiment": r["experiment"]}
            for r in storage.list_lab_runs(limit=limit, visible_to=visible_to)]


def coverage_warning(reference: str, hypothesis: str, ratio: float = 1.5) -> str | None:
    """A sentence when reference and transcript differ so much in length that the WER
    mostly measures the mismatch (a reference for part of the recording), else None."""
    ref, hyp = len(reference.split()), len(hypothesis.split())
    if not ref or not hyp or max(ref, hyp) < ratio * min(ref, hyp):
        return None
    return (f"The reference has {ref} words but the transcript {hyp}. WER counts every word one has "
            "and the other lacks as an error, so it says little here: give the reference for the whole "
            "recording (or a recording the reference covers).")
