"""Scale-out through a real redis-server and Dramatiq workers (in-process and as subprocesses)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from redis_server import redis_server

from scribe.chunking import Chunk
from scribe.core import Segment, Transcription, Usage
from scribe.distributed import RemoteTranscriber, TranscriptionWorker, safe_url
from scribe.errors import TranscriptionError
from scribe.pipeline import Pipeline, PipelineHooks, PipelineOptions

ROOT = Path(__file__).parent.parent
SR = 16_000


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


class Recorder:
    """A backend that notes when it was called and says which chunk it heard."""

    name, model = "rec", "rec-1"

    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.calls: list[float] = []
        self.delay, self.fail_first = delay, fail_first
        self._lock = threading.Lock()

    def transcribe(self, audio):
        with self._lock:
            self.calls.append(time.time())
            n = len(self.calls)
        time.sleep(self.delay)
        if n <= self.fail_first:
            raise TranscriptionError("503 busy", retryable=True)
        return Transcription([Segment(0.0, 1.0, f"chunk {round(float(audio[0]) * 1000)}")])


def chunk(session: str, seq: int) -> Chunk:
    pcm = np.full(SR, 0.1, dtype=np.float32)
    pcm[0] = seq / 1000
    return Chunk(session, seq, seq * SR, (seq + 1) * SR, pcm, captured_at=time.time())


def remote_pipeline(storage, tmp_path, url, timeout=20.0, concurrency=8):
    remote = RemoteTranscriber(url, backend="rec", model="rec-1", timeout=timeout)
    pipe = Pipeline(storage, remote, audio_dir=tmp_path / "audio",
                    options=PipelineOptions(max_concurrency=concurrency, max_attempts=6, retry_base_seconds=0.05,
                                            retry_max_seconds=0.5))
    return remote, pipe.start()


def new_session(storage):
    return storage.create_session(title="t", source="cli", backend="rec", model="rec-1",
                                  chunk_seconds=1, chunk_policy="fixed:1").id


def test_chunks_are_transcribed_by_remote_workers(storage, tmp_path, redis_url):
    backend = Recorder(fail_first=2)
    workers = [TranscriptionWorker(redis_url, backend, threads=2).start() for _ in range(2)]
    remote, pipe = remote_pipeline(storage, tmp_path, redis_url)
    sid = new_session(storage)
    try:
        for seq in range(12):
            pipe.submit(chunk(sid, seq))
        assert pipe.wait_idle(60)
        texts = [s.text for s in storage.list_segments(sid)]
        assert texts == [f"chunk {n}" for n in range(12)]
        assert storage.chunk_counts(sid)["done"] == 12
        assert sum(r.attempts for r in storage.list_chunks(sid)) == 14  # two transient failures retried
    finally:
        pipe.stop()
        remote.close()
        for w in workers:
            w.stop()


def test_global_rate_limit_holds_across_workers(storage, tmp_path, redis_url):
    backend = Recorder()
    # 4 requests per 2-second window, shared through Redis by two workers.
    workers = [TranscriptionWorker(redis_url, backend, rpm=120, rate_window_s=2, threads=2).start()
               for _ in range(2)]
    remote, pipe = remote_pipeline(storage, tmp_path, redis_url, timeout=30)
    sid = new_session(storage)
    try:
        for seq in range(10):
            pipe.submit(chunk(sid, seq))
        assert pipe.wait_idle(90)
        assert storage.chunk_counts(sid)["done"] == 10
        calls = sorted(backend.calls)
        # The limiter counts whole-second buckets; allow for bucket edges.
        for start in calls:
            in_window = [t for t in calls if start <= t < start + 1.0]
            assert len(in_window) <= 4
    finally:
        pipe.stop()
        remote.close()
        for w in workers:
            w.stop()


class BillsBySeq(Recorder):
    """A metered backend: chunk n costs 1000 * (n + 1) input tokens and n + 1 output tokens."""

    name, model = "rec", "rec-2"

    def transcribe(self, audio):
        seq = round(float(audio[0]) * 1000)
        heard = super().transcribe(audio)
        return Transcription(heard.segments, Usage(1000 * (seq + 1), seq + 1))


def test_each_chunk_stores_the_tokens_and_model_of_its_own_answer(storage, tmp_path, redis_url):
    """Two pipeline workers share one RemoteTranscriber; both answers arrive before either
    worker stores its chunk (the filter waits for the other), so usage or a model kept on
    the shared transcriber would be stored under the wrong chunk."""
    both_answered = threading.Barrier(2)

    def wait_for_the_other(segments, audio):
        try:
            both_answered.wait(10)
        except threading.BrokenBarrierError:
            pass
        return segments

    workers = [TranscriptionWorker(redis_url, BillsBySeq(), threads=2).start()]
    remote = RemoteTranscriber(redis_url, backend="rec", model="configured", timeout=20)
    pipe = Pipeline(storage, remote, audio_dir=tmp_path / "audio",
                    options=PipelineOptions(max_concurrency=2, max_attempts=2),
                    hooks=PipelineHooks(segment_filter=wait_for_the_other)).start()
    sid = new_session(storage)
    try:
        for seq in range(2):
            pipe.submit(chunk(sid, seq))
        assert pipe.wait_idle(60)
        rows = storage.list_chunks(sid)
        assert [(r.status, r.input_tokens, r.output_tokens) for r in rows] == [("done", 1000, 1), ("done", 2000, 2)]
        assert [r.model for r in rows] == ["rec-2", "rec-2"]  # the model that answered, not the configured one
    finally:
        pipe.stop()
        remote.close()
        for w in workers:
            w.stop()


def test_no_worker_means_a_retryable_timeout(redis_url):
    remote = RemoteTranscriber(redis_url, backend="rec", model="rec-1", timeout=0.5)
    try:
        with pytest.raises(TranscriptionError) as err:
            remote.transcribe(np.zeros(1600, np.float32))
        assert err.value.retryable
    finally:
        remote.close()


def _start_worker_process(url: str, latency: str, lanes: str = "chunks") -> subprocess.Popen:
    env = {**os.environ, "SCRIBE_BACKEND": "stub", "SCRIBE_STUB_LATENCY": latency, "HF_HUB_OFFLINE": "1",
           "SCRIBE_PARTIAL_MODEL": "tiny.en"}
    return subprocess.Popen([sys.executable, "-m", "scribe", "worker", "--redis", url, "--threads", "2",
                             "--lanes", lanes], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen) -> list[str]:
    """Lines the worker wrote up to "worker ready" (model loading may log first)."""
    lines = []
    for _ in range(200):
        lines.append(proc.stderr.readline())
        if "worker ready" in lines[-1] or not lines[-1]:
            break
    assert "worker ready" in lines[-1], lines
    return lines


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(storage, tmp_path, redis_url):
    first = _start_worker_process(redis_url, "0.3-0.6")
    _wait_ready(first)
    remote, pipe = remote_pipeline(storage, tmp_path, redis_url, timeout=4.0, concurrency=4)
    sid = new_session(storage)
    second = None
    try:
        for seq in range(10):
            pipe.submit(chunk(sid, seq))
        deadline = time.monotonic() + 30
        while storage.chunk_counts(sid)["done"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # dies mid-job, holding messages
        first.wait(10)
        second = _start_worker_process(redis_url, "0.05-0.1")
        _wait_ready(second)
        assert pipe.wait_idle(90)
        assert storage.chunk_counts(sid) == {"pending": 0, "processing": 0, "done": 10, "failed": 0}
        keys = [(s.seq, s.idx) for s in storage.list_segments(sid)]
        assert keys == [(n, 0) for n in range(10)]
    finally:
        pipe.stop()
        remote.close()
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_worker_without_redis_is_one_clear_line():
    env = {**os.environ, "SCRIBE_REDIS_URL": ""}
    out = subprocess.run([sys.executable, "-m", "scribe", "worker"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "no Redis URL" in out.stderr


def test_redis_password_never_shown():
    assert safe_url("redis://:hunter2@cache.internal:6380/1") == "redis://cache.internal:6380/1"


# -- the partial lane on workers ----------------------------------------------------
@pytest.fixture(scope="module")
def partial_decoder():
    from scribe.transcribers.partial_whisper import WhisperPartialDecoder

    return WhisperPartialDecoder("tiny.en")


@pytest.fixture(scope="module")
def spoken():
    import speech

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio, text = speech.meeting_audio(speech.MEETING_TURNS[:1])
    return audio, text


def _partial_message(decoder, tick: str, sent_at: float, audio) -> dict:
    from scribe.distributed import _tail_json
    from scribe.partials import Tail

    return {"tick": tick, "reply_to": decoder._stream, "sent_at": sent_at, "max_age_s": decoder.max_age_s,
            "tails": [_tail_json(Tail(audio, 0.0, times=False))]}


def test_partials_on_a_worker_latest_wins_and_stale_requests_are_dropped_never_decoded(redis_url, partial_decoder, spoken):
    from scribe.distributed import PARTIAL_LATEST, PartialWorker, RemotePartialDecoder
    from scribe.partials import Tail
    from scribe.wer import word_error_rate

    audio, text = spoken
    remote = RemotePartialDecoder(redis_url, max_age_s=10.0)  # room for a decode on a busy test machine
    worker = PartialWorker(redis_url, partial_decoder)
    try:
        # queued while no worker runs: one too old by the time it is taken, one superseded
        remote._actor.send(_partial_message(remote, "too-old", time.time() - 60.0, audio))
        remote._actor.send(_partial_message(remote, "superseded", time.time(), audio))
        remote._redis.set(PARTIAL_LATEST + remote._stream, "a-newer-tick")
        worker.start()
        (heard,) = remote.hear([Tail(audio, 0.0)])  # a new tick: the latest, answered
        assert heard.quiet is None and word_error_rate(text, " ".join(w.text for w in heard.words)) < 0.35
        assert worker.dropped == 2 and worker.decoded == 1  # the two stale ones never decoded
        time.sleep(0.5)
        answered = [json.loads(f[b"answer"])["tick"] for _, f in remote._redis.xrange(remote._stream)]
        assert "too-old" not in answered and "superseded" not in answered
    finally:
        worker.stop()
        remote.close()


def _lane_text(lane, session_id: str, audio, timeout: float = 60.0) -> str:
    """The partial text a lane shows for one offer of `audio` (the first decode's)."""
    lane.offer(session_id, 0, 0, audio)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = lane.partials(session_id)
        if shown and shown[0].text:
            return shown[0].text
        time.sleep(0.1)
    raise AssertionError("no partial text")


def _on_worker_and_local(redis_url: str, worker_decoder, local_decoder, sessions, **lane_settings):
    """Each session's partial text from a lane whose decodes go to a PartialWorker (running
    `worker_decoder`) and from a lane decoding locally, both built with `lane_settings`;
    and how many ticks the worker decoded."""
    from scribe.distributed import PartialWorker, RemotePartialDecoder
    from scribe.partials import PartialLane

    remote = RemotePartialDecoder(redis_url, max_age_s=30.0)  # room for a decode on a busy test machine
    worker = PartialWorker(redis_url, worker_decoder).start()
    lanes = [PartialLane(decoder, **lane_settings).start() for decoder in (remote, local_decoder)]
    try:
        on_worker, local = [{sid: _lane_text(lane, sid, audio) for sid, audio in sessions.items()}
                            for lane in lanes]
    finally:
        for lane in lanes:
            lane.stop()
        worker.stop()
        remote.close()
    return on_worker, local, worker.decoded


def test_partials_on_a_worker_use_the_session_vocabulary_like_local_ones(redis_url, partial_decoder):
    """The lane hands each session's terms to its decoder; on workers they travel in the tick
    message, so a worker's partial spells the rare name as the local lane's does."""
    import speech

    from scribe.wer import word_error_rate

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio = speech.synthesize("Please ask Okonkwo to review the Dramatiq worker change.")
    terms = {"with": ["Okonkwo", "Dramatiq"], "without": []}
    on_worker, local, decoded = _on_worker_and_local(redis_url, partial_decoder, partial_decoder,
                                                     dict.fromkeys(terms, audio),
                                                     vocabulary=lambda session_id: terms[session_id])
    assert decoded >= 2
    for session_id in terms:  # not letter for letter: the tick carries the audio as 16-bit samples
        assert word_error_rate(local[session_id], on_worker[session_id]) <= 0.2, (on_worker, local)
    for shown in (on_worker, local):  # the terms as prompt: the name is one word ("Okonkwo", "Akonkwo")
        assert "konkwo" in shown["with"].lower(), shown
        assert "konkwo" not in shown["without"].lower(), shown


def test_partials_on_a_worker_use_the_session_language_and_prompt_like_local_ones(redis_url):
    """A session's language and prompt travel in the tick message as its vocabulary does: a
    worker's partial of German speech reads German for a `de` session, as the local lane's
    (not word for word: the tick carries the audio as 16-bit samples)."""
    import speech

    from scribe.core import DecodeOptions
    from scribe.transcribers.partial_whisper import WhisperPartialDecoder
    from scribe.wer import word_error_rate

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    german = "Guten Morgen zusammen, wir besprechen heute das Budget für das dritte Quartal."
    audio = speech.synthesize(german, voice="de")
    asked = {"de": DecodeOptions(language="de", prompt="Budget, Quartal."), "plain": DecodeOptions()}
    decoder = WhisperPartialDecoder("base")  # multilingual; the server's language is en
    received: list = []

    class Spy:  # the worker's decoder, noting the pieces each tick brought
        prepare = staticmethod(decoder.prepare)

        def decode(self, batch):
            received.extend(batch)
            return decoder.decode(batch)

    on_worker, local, _ = _on_worker_and_local(redis_url, Spy(), decoder, dict.fromkeys(asked, audio),
                                               options=lambda session_id: asked[session_id])
    assert {(s.language, s.initial_prompt) for s in received} == {("de", "Budget, Quartal."), (None, "")}
    for shown in (on_worker, local):
        assert word_error_rate(german, shown["de"]) <= 0.7 < word_error_rate(german, shown["plain"]), shown


def _served(lane, session_id: str, audio, served: int, timeout: float = 60.0):
    """Offer `audio` (the open chunk so far) and wait until the lane has served `served` requests."""
    lane.offer(session_id, 0, 0, audio)
    deadline = time.monotonic() + timeout
    while (stats := lane.stats(session_id)).served < served:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    return stats


def test_partial_ticks_on_a_worker_run_no_vad_in_the_app_and_silence_shows_no_words(redis_url, spoken,
                                                                                    partial_decoder, monkeypatch):
    """The app sends each tick's audio as it is; the worker (a process of its own) runs the VAD
    and skips, as the local lane does, a tail with no speech or none since the last decode:
    the app calls no VAD, silence shows no words, and trailing silence decodes nothing."""
    import faster_whisper.vad

    from scribe.distributed import RemotePartialDecoder
    from scribe.partials import PartialLane
    from scribe.wer import word_error_rate

    real, calls = faster_whisper.vad.get_speech_timestamps, []
    monkeypatch.setattr(faster_whisper.vad, "get_speech_timestamps",
                        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    audio, text = spoken
    said = np.concatenate([audio, np.zeros(int(1.5 * SR), np.float32)])
    noise = np.random.default_rng(0).normal(0, 0.01, 4 * SR).astype(np.float32)  # Silero: no speech
    worker = _start_worker_process(redis_url, "0.05-0.1", lanes="partials")
    lane = PartialLane(RemotePartialDecoder(redis_url, max_age_s=30.0)).start()
    try:
        _wait_ready(worker)
        stats = _served(lane, "speech", said, 1)
        assert stats.decodes == 1 and word_error_rate(text, lane.partials("speech")[0].text) < 0.35
        stats = _served(lane, "speech", np.concatenate([said, np.zeros(SR, np.float32)]), 2)
        assert stats.decodes == 1 and stats.quiet == 1  # nothing said since: no decode
        stats = _served(lane, "silence", noise, 1)
        assert stats.quiet == 1 and stats.decodes == 0 and lane.partials("silence") == []
        assert calls == []  # every VAD pass ran on the worker
    finally:
        lane.stop()
        worker.terminate()
        worker.wait(10)
    local = PartialLane(partial_decoder).start()  # the same count where the lane decodes locally
    try:
        assert _served(local, "silence", noise, 1).quiet == 1 and calls
    finally:
        local.stop()


def test_no_partial_worker_means_a_skipped_partial_not_a_wait(redis_url):
    from scribe.distributed import RemotePartialDecoder
    from scribe.partials import Tail

    remote = RemotePartialDecoder(redis_url, max_age_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(TranscriptionError) as err:
            remote.hear([Tail(np.zeros(SR, np.float32), 0.0)])
        assert not err.value.retryable and time.monotonic() - started < 3.0 and remote.skipped == 1
    finally:
        remote.close()


def test_a_worker_killed_mid_partial_decode_costs_a_skipped_partial_never_a_lost_chunk(storage, tmp_path, redis_url,
                                                                                        spoken):
    """One worker serves both lanes; it is killed while it decodes a partial tick with a chunk
    in flight. The tick is skipped (never answered, never decoded later: its redelivery is
    stale); the chunk is transcribed by the next worker, once."""
    from scribe.distributed import RemotePartialDecoder
    from scribe.partials import Tail

    audio, _ = spoken
    first = _start_worker_process(redis_url, "1.5-1.5", lanes="chunks,partials")
    _wait_ready(first)
    remote, pipe = remote_pipeline(storage, tmp_path, redis_url, timeout=4.0, concurrency=2)
    partials = RemotePartialDecoder(redis_url, max_age_s=2.0)
    sid = new_session(storage)
    second = None
    try:
        long_speech = np.concatenate([audio] * 3)  # ~12 s: tiny.en takes a while on it
        pipe.submit(chunk(sid, 0))
        outcome: dict = {}

        def tick() -> None:
            try:
                outcome["words"] = partials.hear([Tail(long_speech, 0.0)])
            except TranscriptionError as exc:
                outcome["error"] = exc

        ticker = threading.Thread(target=tick)
        ticker.start()
        time.sleep(0.4)  # the worker has taken the tick and decodes it; the chunk is in flight
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        ticker.join(10)
        assert "error" in outcome and partials.skipped == 1  # a skipped partial
        second = _start_worker_process(redis_url, "0.05-0.1", lanes="chunks,partials")
        lines = _wait_ready(second)
        assert pipe.wait_idle(90)
        assert storage.chunk_counts(sid) == {"pending": 0, "processing": 0, "done": 1, "failed": 0}
        assert [(s.seq, s.idx) for s in storage.list_segments(sid)] == [(0, 0)]
        time.sleep(1.0)
        assert partials._redis.xlen(partials._stream) == 0  # the killed tick was never answered late
        assert "error" in outcome
        assert not any("Traceback" in line for line in lines)
    finally:
        pipe.stop()
        remote.close()
        partials.close()
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_worker_lanes_are_checked():
    env = {**os.environ, "SCRIBE_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "-m", "scribe", "worker", "--lanes", "chunks,words"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--lanes 'chunks,words'" in out.stderr
