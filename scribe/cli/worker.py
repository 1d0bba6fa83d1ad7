"""`worker`: a Dramatiq transcription worker for scaling out (never opens the database)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scribe import backends
from scribe.cli.common import settings_from
from scribe.errors import ScribeError
from scribe.runtime import configure_logging

LANES = ("chunks", "partials")


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a Dramatiq transcription worker (scale-out)")
    p.add_argument("--redis", help="Redis URL (default: SCRIBE_REDIS_URL)")
    p.add_argument("--backend", choices=backends.names())
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--threads", type=int, default=1, help="jobs run at once in this worker")
    p.add_argument("--rpm", type=int, help="global requests-per-minute cap shared by all workers "
                   "(default: SCRIBE_GEMINI_RPM for gemini, none otherwise)")
    p.add_argument("--lanes", default="chunks", help="what this worker serves: chunks, partials, or "
                   "chunks,partials (live sessions' partial decodes, SCRIBE_PARTIAL_MODEL, on their own queue)")
    p.set_defaults(func=cmd_worker)


def worker_lanes(text: str) -> set[str]:
    """The lanes named by `--lanes`; a clear error for anything else."""
    lanes = {lane.strip() for lane in text.split(",") if lane.strip()}
    if not lanes or lanes - set(LANES):
        raise ScribeError(f"--lanes {text!r}: use chunks, partials or chunks,partials")
    return lanes


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from scribe.distributed import safe_url, wait_for_redis

    settings = settings_from(args)
    lanes = worker_lanes(args.lanes)
    url = args.redis or settings.redis_url
    if not url:
        raise ScribeError("no Redis URL: pass --redis redis://HOST:6379/0 or set SCRIBE_REDIS_URL")
    configure_logging(settings.log_level)
    wait_for_redis(url)
    workers = _workers(args, settings, url, lanes)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for worker in workers:
        worker.start()
    print(f"worker ready: lanes {','.join(sorted(lanes))}, {settings.backend} backend, {args.threads} thread(s), "
          f"Redis {safe_url(url)}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for worker in workers:
            worker.stop()
    return 0


def _workers(args: argparse.Namespace, settings: Any, url: str, lanes: set[str]) -> list[Any]:
    """A chunk worker (the configured backend) and/or a partial worker (the partial model, warmed)."""
    from scribe.distributed import PartialWorker, TranscriptionWorker

    workers: list[Any] = []
    if "chunks" in lanes:
        from scribe.transcribers import make_transcriber

        rpm = args.rpm or backends.requests_per_minute(settings.backend, settings)
        workers.append(TranscriptionWorker(url, make_transcriber(settings), rpm=rpm, threads=max(1, args.threads)))
    if "partials" in lanes:
        from scribe.transcribers.partial_whisper import WhisperPartialDecoder

        decoder = WhisperPartialDecoder(settings.partial_model, compute_type=settings.whisper_compute_type,
                                        language=settings.language)
        decoder.warm()
        workers.append(PartialWorker(url, decoder))
    return workers
