"""The real bundled tiny.en model on espeak-ng speech (WER bounds, never exact text)."""

import numpy as np
import pytest

from scribe.chunking import parse_policy
from scribe.errors import ModelNotFoundError
from scribe.ingest import ingest_file, wait_for_session
from scribe.runtime import Runtime
from scribe.transcribers.local import LocalWhisperTranscriber, resolve_model
from scribe.wer import word_error_rate
from scribe.export import plain_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whisper():
    return LocalWhisperTranscriber("tiny.en")


def test_whole_meeting_is_transcribed_within_a_wer_bound(whisper, meeting):
    from scribe.audio import decode_file

    path, reference = meeting
    text = " ".join(s.text for s in whisper.transcribe(decode_file(path)).segments)
    assert word_error_rate(reference, text) < 0.20


def test_fifteen_seconds_of_silence_yields_no_text(whisper):
    assert whisper.transcribe(np.zeros(15 * 16_000, dtype=np.float32)).segments == []


def test_low_noise_yields_no_text(whisper):
    noise = np.random.default_rng(0).standard_normal(15 * 16_000).astype(np.float32) * 0.003
    assert whisper.transcribe(noise).segments == []


def test_file_through_chunker_and_pipeline(settings, meeting):
    path, reference = meeting
    runtime = Runtime.build(settings.with_changes(chunk_seconds=15.0))
    try:
        result = ingest_file(path, storage=runtime.storage, pipeline=runtime.pipeline,
                             policy=parse_policy("pause:15"))
        counts = wait_for_session(runtime.storage, result.session.id, timeout=300)
        assert counts["failed"] == 0 and counts["done"] == result.chunks >= 4
        text = plain_text(runtime.storage.list_segments(result.session.id))
        assert word_error_rate(reference, text) < 0.25
        assert runtime.storage.get_session(result.session.id).status == "done"
    finally:
        runtime.close()


def test_unknown_model_name_says_what_to_do():
    with pytest.raises(ModelNotFoundError, match="not available offline.*SCRIBE_WHISPER_MODEL"):
        resolve_model("large-v9")


def test_model_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model.bin"):
        resolve_model(str(tmp_path))
