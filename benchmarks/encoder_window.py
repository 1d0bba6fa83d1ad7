"""What the chunk lane's encoder window does to WER and CPU, chunk by chunk: every recording
of a set cut into fixed 15 s chunks (cuts fall mid-word, a harder case than the app's
pause cuts), each chunk decoded by `LocalWhisperTranscriber` with faster-whisper's 30 s
window ("full") and with the short window at each padding.

    HF_HUB_OFFLINE=1 python3 benchmarks/encoder_window.py --set tuning --set evaluation --set real \
        [--model base --model tiny.en] [--padding 2 --padding 4 --padding 6]

WER pooled over the set (jiwer, lower case, punctuation dropped); CPU = process seconds for
the whole set after one warm-up call. `bench_models.py --encoder-window full|short` measures
the same choice on the app's whole path (pause cuts, speech check, final pass).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import conversations  # noqa: E402
import jiwer  # noqa: E402
import numpy as np  # noqa: E402
import real_voices  # noqa: E402

from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402
from scribe.transcribers import local  # noqa: E402

CHUNK_SECONDS = 15


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def recordings(set_name: str) -> list[tuple[np.ndarray, str]]:
    found = real_voices.recordings() if set_name == "real" else conversations.rendered(set_name)
    return [(decode_file(wav), reference) for _, wav, reference in found]


def measure(audios: list[tuple[np.ndarray, str]], model: str, padding: float | None) -> tuple[float, float]:
    """(WER, CPU seconds) of the set's chunks decoded with this window (None: 30 s)."""
    local._models.clear()  # a fresh model per setting, so no setting reuses another's
    local.SHORT_WINDOW_MODELS = (model,)  # measured here whatever the app allows it for
    transcriber = local.LocalWhisperTranscriber(model, short_window=padding is not None)
    transcriber.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    step = CHUNK_SECONDS * SAMPLE_RATE
    references, hypotheses = [], []
    cpu = time.process_time()
    for audio, reference in audios:
        texts = [s.text for i in range(0, audio.size, step) for s in transcriber.transcribe(audio[i:i + step]).segments]
        references.append(normalize(reference))
        hypotheses.append(normalize(" ".join(texts)))
    return jiwer.wer(references, hypotheses), time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", dest="sets", choices=[*sorted(conversations.SETS), "real"])
    parser.add_argument("--model", action="append", dest="models")
    parser.add_argument("--padding", type=float, action="append", dest="paddings",
                        help="seconds of padding after the audio (repeatable; default the app's)")
    args = parser.parse_args()
    original = local.short_window_features  # the model's encode looks it up at each call
    for set_name in args.sets or ["tuning"]:
        audios = recordings(set_name)
        for model in args.models or ["base"]:
            for padding in [None, *(args.paddings or [local.ENCODER_PADDING_SECONDS])]:
                local.short_window_features = (lambda features, p=padding: original(features, p)) if padding else original
                wer, cpu = measure(audios, model, padding)
                window = "30 s" if padding is None else f"audio + {padding:g} s"
                print(f"{set_name:10s} {model:8s} {window:12s} WER {wer:.3f}  CPU {cpu:.1f} s", flush=True)


if __name__ == "__main__":
    main()
