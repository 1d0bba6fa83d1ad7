"""Models x jobs on conversational speech: live WER, final-pass WER, real-time factor.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_models.py --set tuning|evaluation|real \
        [--model tiny.en --model base] [--margin 0 --margin 0.05] [--encoder-window full] [--markdown]

For every conversation of the set (benchmarks/conversations.py) and every live
model L, the recording goes through the app's real path (Runtime: chunker
`pause:15`, speech check, noisy-chunk context, hallucination guard, DuckDB in a
temp folder). Then for every final model F the stored session is re-decoded by
the final pass's own windows (scribe.final_pass.decode_windows) once, and the
final text is chosen per window with each keep-live margin ("raw" = always the
re-decode). WER is pooled over the set (all errors / all reference words).
Real-time factor = model processing seconds / audio seconds (median over the
conversations, one run, 1 worker). `--encoder-window full` feeds Whisper's encoder
30 s windows on both jobs, as faster-whisper does by itself (the app's default is
`short`: SCRIBE_WHISPER_SHORT_WINDOW).
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
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jiwer  # noqa: E402

import conversations  # noqa: E402
import real_voices  # noqa: E402

from scribe.chunking import parse_policy  # noqa: E402
from scribe.config import Settings  # noqa: E402
from scribe.core import LIVE  # noqa: E402
from scribe.final_pass import WINDOW_SECONDS, choose_per_window, decode_windows  # noqa: E402
from scribe.ingest import ingest_file, wait_for_session  # noqa: E402
from scribe.runtime import Runtime  # noqa: E402
from scribe.storage import Storage  # noqa: E402
from scribe.transcribers.local import LocalWhisperTranscriber  # noqa: E402
from scribe.wer import normalize  # noqa: E402


def live_session(settings: Settings, transcriber, wav: Path) -> tuple[Runtime, str, float]:
    """The recording through the app's path; returns the runtime (still open), session, seconds."""
    runtime = Runtime.build(settings, transcriber=transcriber, storage=Storage(":memory:"))
    result = ingest_file(wav, storage=runtime.storage, pipeline=runtime.pipeline,
                         policy=parse_policy("pause:15"), source="cli")
    wait_for_session(runtime.storage, result.session.id, timeout=900)
    return runtime, result.session.id, result.audio_seconds


def text_of(segments) -> str:
    return " ".join(s.text for s in segments)


def measure(set_name: str, models: list[str], margins: list[float], window_s: float,
            short_window: bool = True) -> dict:
    convs = real_voices.recordings() if set_name == "real" else conversations.rendered(set_name)
    whisper = {m: LocalWhisperTranscriber(m, short_window=short_window) for m in models}
    refs: list[str] = []
    hyps: dict[tuple, list[str]] = {}
    rtf: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="scribe-models-") as tmp:
        settings = Settings.from_env({}, data_dir=Path(tmp))
        for name, wav, reference in convs:
            refs.append(normalize(reference))
            for live_model in models:
                runtime, session_id, seconds = live_session(settings, whisper[live_model], wav)
                try:
                    storage = runtime.storage
                    chunks = storage.list_chunks(session_id)
                    live = storage.list_segments(session_id, LIVE)
                    hyps.setdefault(("live", live_model), []).append(normalize(text_of(live)))
                    busy = sum((c.finished_at or 0) - (c.started_at or 0) for c in chunks)
                    rtf.setdefault(("live", live_model), []).append(busy / seconds)
                    for final_model in models:
                        started = time.monotonic()
                        windows = decode_windows(whisper[final_model], chunks, window_seconds=window_s)
                        rtf.setdefault(("final", final_model), []).append((time.monotonic() - started) / seconds)
                        for margin in [None, *margins]:
                            segments, kept = choose_per_window(windows, live, margin)
                            key = (live_model, final_model, margin)
                            hyps.setdefault(key, []).append(normalize(text_of(segments)))
                            print(f"{name:<16} live {live_model:<8} final {final_model:<8} margin "
                                  f"{'raw' if margin is None else margin:<5} kept {kept}/{len(windows)}  "
                                  f"WER live {jiwer.wer(refs[-1], hyps[('live', live_model)][-1]):.3f} "
                                  f"final {jiwer.wer(refs[-1], hyps[key][-1]):.3f}", file=sys.stderr)
                finally:
                    runtime.close()
    wer = {key: jiwer.wer(refs, texts) for key, texts in hyps.items()}
    return {"wer": wer, "rtf": {k: statistics.median(v) for k, v in rtf.items()},
            "seconds": sum(conversations.decode_file(w).size for _n, w, _r in convs) / 16_000,
            "words": sum(len(r.split()) for r in refs), "window": window_s, "recordings": len(convs)}


def report(set_name: str, models: list[str], margins: list[float], result: dict, markdown: bool) -> str:
    columns = ["raw"] + [f"rule {m:g}" for m in margins]
    lines = [f"{set_name}, final-pass window {result['window']:g} s: {result['recordings']} recordings, {result['seconds']:.0f} s, "
             f"{result['words']} reference words"]
    head = ["live model", "live WER %"] + [f"final {f} {c}" for f in models for c in columns]
    rows = []
    for live_model in models:
        row = [live_model, f"{result['wer'][('live', live_model)] * 100:.1f}"]
        for final_model in models:
            for margin in [None, *margins]:
                row.append(f"{result['wer'][(live_model, final_model, margin)] * 100:.1f}")
        rows.append(row)
    if markdown:
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        lines += ["  ".join(head)] + ["  ".join(r) for r in rows]
    lines.append("")
    lines += [f"real-time factor, {job} {model}: {value:.3f}" for (job, model), value in sorted(result["rtf"].items())]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=[*sorted(conversations.SETS), "real"], default="tuning",
                   help="real: human recordings from Debian test data (benchmarks/real_voices.py)")
    p.add_argument("--model", action="append", dest="models")
    p.add_argument("--margin", type=float, action="append", dest="margins",
                   help="keep-live margin to score (repeatable); default 0")
    p.add_argument("--window", type=float, default=WINDOW_SECONDS,
                   help=f"final-pass window seconds (default {WINDOW_SECONDS:g}, the app's)")
    p.add_argument("--encoder-window", choices=["short", "full"], default="short",
                   help="the encoder reads a window's audio plus 2 s (the app's default) or 30 s")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    models = args.models or ["tiny.en", "base"]
    margins = args.margins if args.margins is not None else [0.0]
    result = measure(args.set, models, margins, args.window, args.encoder_window == "short")
    print(report(args.set, models, margins, result, args.markdown))


if __name__ == "__main__":
    main()
