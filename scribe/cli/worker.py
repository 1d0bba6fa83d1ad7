"""`worker`: a Dramatiq transcription worker for scaling out (never opens the database)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scribe.cli.common import settings_from
from scribe.config import BACKENDS
from scribe.errors import ScribeError
from scribe.runtime import configure_logging


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a Dramatiq transcription worker (scale-out)")
    p.add_argument("--redis", help="Redis URL (default: SCRIBE_REDIS_URL)")
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--model", help="Whisper model name or folder (local), or Gemini model")
    p.add_argument("--threads", type=int, default=1, help="jobs run at once in this worker")
    p.add_argument("--rpm", type=int, help="global requests-per-minute cap shared by all workers "
                   "(default: SCRIBE_GEMINI_RPM for gemini, none otherwise)")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from scribe.distributed import TranscriptionWorker, safe_url, wait_for_redis
    from scribe.transcribers import make_transcriber

    settings = settings_from(args)
    url = args.redis or settings.redis_url
    if not url:
        raise ScribeError("no Redis URL: pass --redis redis://HOST:6379/0 or set SCRIBE_REDIS_URL")
    configure_logging(settings.log_level)
    wait_for_redis(url)
    rpm = args.rpm or (settings.gemini_rpm if settings.backend == "gemini" else None)
    worker = TranscriptionWorker(url, make_transcriber(settings), rpm=rpm, threads=max(1, args.threads))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"worker ready: {settings.backend} backend, {args.threads} thread(s), Redis {safe_url(url)}",
          file=sys.stderr, flush=True)
    worker.run_until(stop)
    return 0
