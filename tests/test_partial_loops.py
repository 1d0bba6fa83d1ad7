"""Live words never loop: the partial lane's text for the opening of a meeting, decoded as
the lane decodes it (real espeak-ng speech, the default partial model `base`, its tails,
prompts and commits through `ChunkText`), holds no more words than were spoken, and each
chunk's last text stays close to what was said.

Greedy decoding of a second or two of speech, above all with the previous chunk's words as
the prompt, used to loop ("everyone thanks for joining everyone thanks for joining ..." for
the first words, "we should move our tundra and we should move our tundra and ..." at the
start of the next chunk) and the page showed it."""

from __future__ import annotations

import numpy as np
import pytest
import speech

from scribe.audio import SAMPLE_RATE
from scribe.config import DEFAULT_PARTIAL_MODEL
from scribe.partials import ChunkText, without_loops
from scribe.transcribers.partial_whisper import TimedWord, WhisperPartialDecoder
from scribe.wer import normalize, word_error_rate

if not speech.have_espeak():
    pytest.skip("espeak-ng is not installed", allow_module_level=True)

GAP_S = 0.9
CHUNK_TURNS = (3, 2)
"""The opening as the chunk lane cuts it at pause:15: three turns, then the next two."""
SPARE_WORDS = 3
"""Words a step may show beyond those spoken by its end (one being said, a split number)."""


def opening() -> tuple[list[np.ndarray], list[list[tuple[float, str]]]]:
    """Each chunk's audio and its turns as (end second in the chunk, text)."""
    chunks, timed = [], []
    turn = 0
    for count in CHUNK_TURNS:
        pieces, ends, at = [], [], 0.0
        for text in speech.MEETING_TURNS[turn:turn + count]:
            voice = speech.synthesize(text, voice=speech.VOICES[turn % len(speech.VOICES)])
            pieces += [voice, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
            at += voice.size / SAMPLE_RATE
            ends.append((at, text))
            at += GAP_S
            turn += 1
        chunks.append(np.concatenate(pieces))
        timed.append(ends)
    return chunks, timed


def spoken_by(turns: list[tuple[float, str]], second: float) -> int:
    """Reference words said by `second` (words spread evenly over their turn)."""
    said, start = 0, 0.0
    for end, text in turns:
        words = normalize(text).split()
        share = min(1.0, max(0.0, (second - start) / (end - start)))
        said += int(np.ceil(share * len(words)))
        start = end + GAP_S
    return said


def test_loop_is_cut_to_its_first_pass() -> None:
    def cut(text: str) -> str:
        return " ".join(w.text for w in without_loops([TimedWord(w, 0.0, 0.0) for w in text.split()]))

    assert cut("we showed them we showed them we showed them we showed them") == "we showed them"
    assert cut("morning everyone. Morning everyone. Morning everyone. Thanks for") == "morning everyone. Thanks for"
    assert cut("move our tundra and we should move our tundra and we should") == "move our tundra and we should"
    assert cut("very very good, the budget for the third quarter") == "very very good, the budget for the third quarter"
    sentence = "you will navigate this demonstration by dialing digits if you are using a console chain"
    assert cut(f"{sentence} {sentence} {sentence} you will") == sentence  # a loop of 15 words


def test_live_words_of_the_opening_do_not_loop() -> None:
    decoder = WhisperPartialDecoder(DEFAULT_PARTIAL_MODEL)
    chunks, timed = opening()
    context, problems, wers = "", [], []
    for audio, turns in zip(chunks, timed):
        chunk = ChunkText(context)
        for until in [*range(SAMPLE_RATE, audio.size, SAMPLE_RATE), audio.size]:
            open_audio, end_s = audio[:until], until / SAMPLE_RATE
            tail, offset = chunk.tail_audio(open_audio)
            piece = decoder.prepare(tail, offset, chunk.prompt(), chunk.wants_times(end_s))
            if chunk.unchanged(piece, end_s):
                continue
            assert piece is not None
            chunk.accept(decoder.decode([piece])[0], end_s, piece.speech_end_s)
            shown = normalize(" ".join(chunk.words())).split()
            if len(shown) > spoken_by(turns, end_s) + SPARE_WORDS:
                problems.append(f"{end_s:.0f} s: {' '.join(shown)}")
        context = " ".join(chunk.words())
        wers.append(word_error_rate(" ".join(text for _, text in turns), context))
    assert not problems, "more words shown than spoken:\n" + "\n".join(problems)
    assert max(wers) <= 0.35, wers
