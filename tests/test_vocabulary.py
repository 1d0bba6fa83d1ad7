"""Team vocabulary: stored with clear limits, given to every lane as an input, and learnt
from people's corrections."""

from __future__ import annotations

import numpy as np
import pytest

from scribe.core import Segment, Word
from scribe.errors import NotFoundError, ScribeError
from scribe.storage.vocabulary import MAX_TERMS, split_terms
from scribe.transcribers.base import call_transcriber
from scribe.transcribers.stub import StubTranscriber
from scribe.vocabulary import gemini_instruction, keep_term_changes, keep_term_segments, suggestions, whisper_prompt


def test_terms_are_stored_once_in_any_case_with_their_source(storage):
    assert storage.add_terms(["Siobhan", "DuckDB"], created_by="ana") == ["Siobhan", "DuckDB"]
    assert storage.add_terms(["duckdb", "Kubeflow"], source="correction", detail="heard 'duck db'") == ["Kubeflow"]
    assert storage.add_terms(["SIOBHAN"]) == [] and storage.add_terms([]) == []  # nothing new: nothing added
    terms = {t.term: t for t in storage.list_vocabulary()}
    assert list(terms) == ["DuckDB", "Kubeflow", "Siobhan"]
    assert terms["Kubeflow"].source == "correction" and terms["Kubeflow"].detail == "heard 'duck db'"
    assert terms["Siobhan"].created_by == "ana"
    storage.remove_term("SIOBHAN")
    with pytest.raises(NotFoundError):
        storage.remove_term("Siobhan")


def test_ten_thousand_terms_are_refused_whole_with_the_limit(storage):
    storage.add_terms(["Keep"])
    with pytest.raises(ScribeError, match=f"at most {MAX_TERMS} terms"):
        storage.add_terms([f"term{n}" for n in range(10_000)])
    assert [t.term for t in storage.list_vocabulary()] == ["Keep"]


@pytest.mark.parametrize("term, why", [
    ("", "empty"), ("a, b", "commas"), ("x\x00y", "control"), ("x" * 41, "too long"),
    ("one two three four five six", "too long"), ("---", "letter or digit")])
def test_odd_terms_are_refused_with_why(storage, term, why):
    with pytest.raises(ScribeError, match=why):
        storage.add_terms([term])
    assert storage.list_vocabulary() == []


@pytest.mark.parametrize("term", ["<script>alert(1)</script>", "O'Brien", "C++", "Zoë", "李小龍", "' OR 1=1 --"])
def test_unusual_but_printable_terms_are_kept_literally(storage, term):
    storage.add_terms([term])
    assert [t.term for t in storage.list_vocabulary()] == [term]


def test_split_terms_reads_a_comma_list():
    assert split_terms(" Siobhan, DuckDB;  Kube  flow ,, duckdb ") == ["Siobhan", "DuckDB", "Kube flow"]


def test_session_words_come_first_then_the_newest_team_words(storage):
    session = storage.create_session(title="t", source="cli", backend="stub", model="stub",
                                     chunk_seconds=4, chunk_policy="fixed")
    storage.add_terms(["Older"])
    storage.add_terms(["Newer"])
    storage.set_session_terms(session.id, ["Quorvia", "newer"])
    assert storage.vocabulary_for(session.id) == ["Quorvia", "newer", "Older"]
    assert storage.vocabulary_for("another") == ["Newer", "Older"]
    storage.delete_session(session.id)
    assert storage.vocabulary_for(session.id) == ["Newer", "Older"]


def test_a_sessions_words_and_options_are_read_once_until_a_write_changes_them(storage):
    """The partial lane asks before every decode of every live session; the answer is kept,
    and each kind of write shows at once."""
    from scribe.core import DecodeOptions

    session = storage.create_session(title="t", source="cli", backend="stub", model="stub",
                                     chunk_seconds=4, chunk_policy="fixed")
    storage.add_terms(["Quorvia"])
    kept = storage._decode_inputs
    for _ in range(50):
        assert storage.vocabulary_for(session.id) == ["Quorvia"]
        assert storage.options_for(session.id) == DecodeOptions()
    assert kept.reads == 2
    storage.vocabulary_for(session.id).append("changed by a caller")  # a copy: the kept list is not touched
    assert storage.vocabulary_for(session.id) == ["Quorvia"]

    storage.add_terms(["Zelkar"])
    assert storage.vocabulary_for(session.id) == ["Zelkar", "Quorvia"]
    storage.remove_term("quorvia")
    assert storage.vocabulary_for(session.id) == ["Zelkar"]
    storage.set_session_terms(session.id, ["Okonkwo"])
    assert storage.vocabulary_for(session.id) == ["Okonkwo", "Zelkar"]
    storage.set_session_options(session.id, DecodeOptions(language="de"))
    assert storage.options_for(session.id) == DecodeOptions(language="de")
    storage.delete_session(session.id)
    assert storage.vocabulary_for(session.id) == ["Zelkar"]
    assert storage.options_for(session.id) == DecodeOptions()


def test_a_read_that_began_before_a_write_is_not_kept():
    """A read racing a write may return the old rows, but is not kept past the write."""
    from scribe.storage.database import KeptReads

    kept = KeptReads()
    assert kept.get("k", lambda: (kept.changed(), "old")[1]) == "old"  # a write lands mid-read
    assert kept.get("k", lambda: "new") == "new"
    assert kept.get("k", lambda: "newer") == "new"
    assert kept.reads == 2


def test_the_prompt_keeps_the_first_terms_that_fit():
    assert whisper_prompt([]) == "" and gemini_instruction([]) == ""
    assert whisper_prompt(["Siobhan", "DuckDB"]) == "Siobhan, DuckDB."
    long = whisper_prompt([f"Term{n:03d}" for n in range(200)])
    assert long.startswith("Term000, Term001") and len(long) <= 510 and "Term199" not in long
    assert "spell it exactly" in gemini_instruction(["Siobhan"])


TERMS = ["Siobhan", "Zephyrix", "Okonkwo", "Dramatiq", "DuckDB", "Nguyen", "Quorvia", "Aoife", "Tadhg", "Kubeflow"]


@pytest.mark.parametrize("plain, biased, expected", [
    ("Please ask how can we all to renew the dramatic worker change?",
     "Please ask Okonkwo to remove the Dramatiq worker change.",
     "Please ask Okonkwo to renew the Dramatiq worker change?"),  # "remove" writes no term: not taken
    ("We moved the analytic store to not be the last print.", "We moved the analytic store to DuckDB last print.",
     "We moved the analytic store to DuckDB last print."),
    ("We should move the money into the support team.", "We should move the money until the support team.",
     "We should move the money into the support team."),
    ("I agree, support tickets done will now turn the last product release.",
     "I breathe, support, Digith, Snubble, Naffter, Malast, Product Release.",
     "I agree, support tickets done will now turn the last product release."),
])
def test_only_the_changes_that_write_a_term_are_kept(plain, biased, expected):
    assert keep_term_changes(plain, biased, TERMS) == expected


def test_segments_take_the_term_where_the_decodes_overlap_and_keep_the_rest():
    plain = [Segment(0.0, 2.0, "Shimon will prevent the roadmap.", confidence=0.6),
             Segment(2.5, 4.0, "The money goes into support.", confidence=0.9)]
    biased = [Segment(0.1, 2.1, "Siobhan will present the roadmap.", confidence=0.7),
              Segment(2.5, 4.0, "The money goes until support.", confidence=0.8)]
    merged = keep_term_segments(plain, biased, TERMS)
    assert [(s.start, s.end, s.text) for s in merged] == [(0.0, 2.1, "Siobhan will prevent the roadmap."),
                                                          (2.5, 4.0, "The money goes into support.")]
    assert merged[0].confidence == 0.6
    assert keep_term_segments(plain, plain, TERMS) is plain  # no term written: the plain decode as it is


def test_a_term_is_taken_only_where_the_decode_with_the_vocabulary_is_as_sure():
    heard = ([Segment(0.0, 2.0, "Shimon will present the roadmap.", confidence=0.55)],
             [Segment(0.0, 2.0, "Siobhan will present the roadmap.", confidence=0.62)])
    made_up = ([Segment(0.0, 3.0, "Support tickets doubled after the last product release.", confidence=0.81)],
               [Segment(0.0, 3.0, "Support tickets doubled after the Quorvia release.", confidence=0.64)])
    assert [s.text for s in keep_term_segments(*heard, TERMS)] == ["Siobhan will present the roadmap."]
    assert [s.text for s in keep_term_segments(*made_up, TERMS)] == [
        "Support tickets doubled after the last product release."]
    assert [s.text for s in keep_term_segments(*made_up, TERMS, slack=None)] == [  # no support asked
        "Support tickets doubled after the Quorvia release."]


def test_timed_words_are_merged_with_their_own_times():
    def timed(*words):
        return [Word(start, start + 0.4, f" {text}") for start, text in words]

    plain = [Segment(0.0, 2.0, "Ask how can we to renew it.",
                     words=timed((0.0, "Ask"), (0.4, "how"), (0.6, "can"), (0.8, "we"), (1.0, "to"), (1.2, "renew"),
                                 (1.6, "it.")))]
    biased = [Segment(0.0, 2.0, "Ask Okonkwo to remove it.",
                      words=timed((0.0, "Ask"), (0.5, "Okonkwo"), (1.0, "to"), (1.2, "remove"), (1.6, "it.")))]
    (merged,) = keep_term_segments(plain, biased, TERMS)
    assert merged.text == "Ask Okonkwo to renew it."
    assert [(w.start, w.text) for w in merged.words] == [(0.0, " Ask"), (0.5, " Okonkwo"), (1.0, " to"),
                                                         (1.2, " renew"), (1.6, " it.")]


@pytest.mark.parametrize("machine, corrected, expected", [
    ("I asked shivon about the duck DB numbers.", "I asked Siobhan about the DuckDB numbers.",
     ["Siobhan", "DuckDB"]),
    ("The quorvia launch slips.", "The Quorvia launch slips.", []),  # casing only
    ("Their going home.", "They're going home.", []),  # an ordinary word
    ("we use cube flow now", "we use Kubeflow now", ["Kubeflow"]),
    ("talk to tom", "talk to Tom", []),
])
def test_corrections_suggest_names_not_ordinary_fixes(machine, corrected, expected):
    assert [s.term for s in suggestions(machine, corrected)] == expected


def test_known_terms_are_not_suggested_again():
    assert suggestions("ask shivon", "ask Siobhan", known=["siobhan"]) == []
    assert suggestions("ask shivon", "ask Siobhan")[0].heard == "shivon"


def test_a_backend_without_a_vocabulary_parameter_still_works():
    class Plain:
        name, model = "plain", "plain"

        def transcribe(self, audio):
            return StubTranscriber().transcribe(audio)

    audio = np.full(16_000, 0.1, np.float32)
    assert call_transcriber(Plain(), audio, []).segments
    assert call_transcriber(StubTranscriber(), audio, ["Siobhan"]).segments


def test_the_chunk_lane_gives_each_session_its_words(storage, settings):
    from scribe.chunking import Chunker, FixedPolicy
    from scribe.pipeline import Pipeline

    heard: list[list[str]] = []

    class Listening(StubTranscriber):
        def transcribe(self, audio, *, vocabulary=()):
            heard.append(list(vocabulary))
            return super().transcribe(audio)

    storage.add_terms(["DuckDB"])
    session = storage.create_session(title="t", source="cli", backend="stub", model="stub",
                                     chunk_seconds=2, chunk_policy="fixed")
    storage.set_session_terms(session.id, ["Quorvia"])
    pipeline = Pipeline(storage, Listening(), audio_dir=settings.audio_dir).start()
    try:
        chunker = Chunker(session.id, FixedPolicy(2.0))
        for chunk in chunker.push(np.full(4 * 16_000, 0.1, np.float32)) + chunker.finish():
            pipeline.submit(chunk)
        pipeline.finish_session(session.id)
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    assert heard and all(words == ["Quorvia", "DuckDB"] for words in heard)


def test_local_whisper_spells_a_rare_name_only_with_the_vocabulary():
    import speech

    from scribe.transcribers.local import LocalWhisperTranscriber

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio = speech.synthesize("Please ask Okonkwo to review the Dramatiq worker change.")
    model = LocalWhisperTranscriber("tiny.en")
    plain = " ".join(s.text for s in model.transcribe(audio).segments)
    given = " ".join(s.text for s in model.transcribe(audio, vocabulary=["Okonkwo", "Dramatiq"]).segments)
    assert "Dramatiq" not in plain and "Okonkwo" not in plain
    assert "Dramatiq" in given or "Okonkwo" in given


def test_the_vocabulary_leaves_speech_without_its_terms_as_it_was():
    """A list of names read before decoding nudges ordinary words too (tiny.en wrote "I breathe,
    support, Digith, Snubble, ..." for this sentence with the terms as hotwords): only the
    changes that write a term are kept, so speech without the terms comes out as without them."""
    import speech

    from scribe.transcribers.local import LocalWhisperTranscriber

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    model = LocalWhisperTranscriber("tiny.en")
    for text, voice in (("I agree, support tickets doubled after the last product release.", "en-us"),
                        ("We should move part of the advertising money into the customer support team.", "en-us"),
                        ("Please pack your desks before the weekend of the twenty eighth.", "en-gb")):
        audio = speech.synthesize(text, voice=voice)
        plain = [s.text for s in model.transcribe(audio).segments]
        assert [s.text for s in model.transcribe(audio, vocabulary=TERMS + ["Asterisk"]).segments] == plain
