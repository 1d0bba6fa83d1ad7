"""The real bundled tiny.en model on espeak-ng speech (WER bounds, never exact text)."""

import numpy as np
import pytest

from scribe.chunking import parse_policy
from scribe.core import DecodeOptions
from scribe.errors import ModelNotFoundError
from scribe.export import plain_text
from scribe.ingest import ingest_file, wait_for_session
from scribe.runtime import Runtime
from scribe.transcribers.local import LocalWhisperTranscriber, resolve_model, short_window_features
from scribe.wer import word_error_rate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whisper():
    return LocalWhisperTranscriber("tiny.en")


def test_whole_meeting_is_transcribed_within_a_wer_bound(whisper, meeting):
    from scribe.audio import decode_file

    path, reference = meeting
    text = " ".join(s.text for s in whisper.transcribe(decode_file(path)).segments)
    assert word_error_rate(reference, text) < 0.20


def test_base_reads_a_chunk_plus_two_seconds_not_thirty_with_the_same_words_and_times(monkeypatch):
    """A 14.5 s chunk: base's encoder input is its audio plus 2 s of frames, in whole seconds
    (not 30 s), the text as good as with the full window, and segment and word times inside
    the chunk, in order. tiny.en keeps the 30 s window (with the short one it dropped
    sentences), and so does a decode in another language."""
    import speech
    from faster_whisper import WhisperModel

    audio, reference = speech.meeting_audio(speech.MEETING_TURNS[:3], gap_s=0.9)
    widths: list[int] = []
    encode = WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda model, features: widths.append(features.shape[-1])
                        or encode(model, features))
    short = LocalWhisperTranscriber("base", short_window=True).transcribe(audio).segments
    assert widths and all(width % 100 == 0 and width <= 100 * (audio.size / 16_000 + 3) for width in widths)
    widths.clear()
    full = LocalWhisperTranscriber("base", short_window=False).transcribe(audio).segments
    assert widths and set(widths) == {3000}
    widths.clear()
    LocalWhisperTranscriber("tiny.en", short_window=True).transcribe(audio)
    assert widths and set(widths) == {3000}
    widths.clear()  # another language than English: not measured, read in 30 s windows
    LocalWhisperTranscriber("base", short_window=True).transcribe(audio, options=DecodeOptions(language="de"))
    assert widths and set(widths) == {3000}
    text = " ".join(s.text for s in short)
    assert word_error_rate(reference, text) <= word_error_rate(reference, " ".join(s.text for s in full)) + 0.05
    assert word_error_rate(reference, text) < 0.2
    times = [w.start for s in short for w in s.words]
    assert times == sorted(times) and times[0] >= 0 and times[-1] <= audio.size / 16_000
    assert all(0 <= s.start < s.end <= audio.size / 16_000 + 0.01 for s in short)


def test_short_window_features_keep_the_audio_frames_and_two_seconds_of_the_padding():
    window = np.zeros((80, 3000), np.float32)
    window[:, :1500] = -1.5  # 15 s of silence as log-mel reads: audio, not padding
    assert short_window_features(window).shape == (80, 1700)
    assert short_window_features(window[None]).shape == (1, 80, 1700)
    full = np.full((80, 3000), 0.3, np.float32)
    assert short_window_features(full).shape == (80, 3000)
    assert short_window_features(np.zeros((80, 3000), np.float32)).shape == (80, 200)


def test_short_windows_come_in_whole_seconds_so_the_encoder_sees_few_shapes():
    """Each encoder input length is a kernel compiled and kept for that shape: chunks of any
    length within one second share one."""
    lengths = set()
    for audio_frames in range(1401, 1501, 7):  # 14.01-15.0 s of audio
        window = np.zeros((80, 3000), np.float32)
        window[:, :audio_frames] = -1.5
        lengths.add(short_window_features(window).shape[-1])
    assert lengths == {1700}
    window = np.zeros((80, 3000), np.float32)
    window[:, :2950] = -1.5
    assert short_window_features(window).shape[-1] == 3000  # never past Whisper's 30 s


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
