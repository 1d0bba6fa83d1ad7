"""Voice profiles: a named voice kept across sessions, and recognising it in each session.

A profile is the unit mean of the voice windows of a person's speech (the same GE2E
embeddings `scribe.speakers` clusters a session with), weighted by seconds. It is built
from a session speaker's stored centroid or from a recording of one person, and grows
when more speech is added.

Recognition is an input to the speaker labels, not a lane of its own: after the live
labeller or the whole-session relabel stores a session's speakers, `recognise` compares
each speaker's centroid with every profile and names the close ones. Two speakers never
share a profile, a speaker a person named or refused is left alone, and a recognised
speaker is re-checked on every relabel (its centroid sharpens as the session goes on).

Everything here runs on the caller's thread (the `scribe-speakers` thread for
recognition, a request thread for enrolment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scribe import speakers as sp
from scribe.audio import decode_file, rms_dbfs
from scribe.core import SpeakerRow, VoiceProfile, default_speaker_name
from scribe.errors import ScribeError
from scribe.storage import Storage

log = logging.getLogger("scribe.voices")

MATCH_THRESHOLD = 0.85
"""A speaker this similar (cosine) to a profile is that profile's voice. See BENCHMARKS.md
"Voice profiles" for the false-accept and false-reject rates it was chosen from."""
MIN_MATCH_SECONDS = 4.0
"""A live speaker with less speech than this is not matched yet: its centroid is too rough."""
MIN_ENROL_SECONDS = 5.0
"""Less speech than this makes a profile that matches by chance."""
TWO_VOICES_BELOW = 0.70
"""A recording whose speech splits into two parts less similar than this holds two voices and
is refused. On real voices (BENCHMARKS.md "Voice profiles") one person's parts scored as low
as 0.75 and two people's 0.74-0.86: the encoder cannot tell those apart, so between this and
MIXED_BELOW a recording is taken with a warning, not refused."""
MIXED_BELOW = 0.86
SECOND_VOICE_SHARE = 0.15
"""The smaller part must hold this share of the speech to count as a second voice."""
GROUP_WINDOWS = 4
"""Windows are compared in runs of four (~3-4 s of speech): single windows are too noisy."""
SILENCE_DBFS = -55.0
MAX_ENROL_SECONDS = 30 * 60


class EnrolmentError(ScribeError):
    """The speech cannot make (or improve) a profile; the message says why."""


@dataclass
class Voice:
    """One person's voice measured from speech: unit embedding and seconds of speech."""

    embedding: np.ndarray
    seconds: float
    warning: str | None = None
    """Said to the person when the speech was usable but doubtful (e.g. parts unlike each other)."""


# -- enrolment ------------------------------------------------------------------------------

def voice_from_audio(audio: np.ndarray, encoder: sp.VoiceEncoder | None = None) -> Voice:
    """The voice in a recording of one person; EnrolmentError for silence, noise, music or
    more than one voice, saying which."""
    windows = sp.embed_windows(audio, encoder)
    seconds = float(windows.seconds.sum()) if len(windows) else 0.0
    if seconds < MIN_ENROL_SECONDS:
        raise EnrolmentError(_too_little(audio, seconds))
    similarity, share = _two_parts(windows)
    if similarity < TWO_VOICES_BELOW and share >= SECOND_VOICE_SHARE:
        raise EnrolmentError(f"this recording holds more than one voice (a part with {100 * share:.0f} % of "
                             f"the speech sounds like someone else, similarity {similarity:.2f}): enrol from "
                             "a recording of one person only")
    warning = None
    if similarity < MIXED_BELOW and share >= SECOND_VOICE_SHARE:
        warning = (f"parts of this recording sound unlike each other (similarity {similarity:.2f}); if "
                   "someone else speaks in it, the voice learnt is a mix")
    return Voice(sp.mean_voice(windows.embeddings, windows.seconds), seconds, warning)


def _two_parts(windows: sp.Windows) -> tuple[float, float]:
    """(similarity of the two parts the speech splits into best, the smaller part's share)."""
    n = len(windows) // GROUP_WINDOWS
    if n < 2:
        return 1.0, 0.0
    runs = [slice(i * GROUP_WINDOWS, (i + 1) * GROUP_WINDOWS) for i in range(n)]
    means = np.array([sp.mean_voice(windows.embeddings[r], windows.seconds[r]) for r in runs])
    weights = np.array([windows.seconds[r].sum() for r in runs])
    labels, centroids = sp.spherical_kmeans(means, 2, weights=weights)
    shares = np.bincount(labels, weights=weights, minlength=2) / weights.sum()
    return float(centroids[0] @ centroids[1]), float(shares.min())


def _too_little(audio: np.ndarray, seconds: float) -> str:
    level = rms_dbfs(audio) if audio.size else -120.0
    if level < SILENCE_DBFS:
        return f"this recording is silent ({level:.0f} dBFS): there is no voice to learn"
    if seconds == 0:
        return (f"no speech found in this recording ({level:.0f} dBFS of sound): noise or music "
                "is not a voice")
    return (f"only {seconds:.1f} s of speech found (noise or music around it is not counted); "
            f"a voice needs at least {MIN_ENROL_SECONDS:.0f} s")


def voice_from_file(path: str | Path, encoder: sp.VoiceEncoder | None = None) -> Voice:
    """`voice_from_audio` on a file in any format the app reads (at most 30 minutes)."""
    return voice_from_audio(decode_file(path, max_seconds=MAX_ENROL_SECONDS), encoder)


def voice_of_speaker(storage: Storage, session_id: str, speaker_id: int) -> Voice:
    """A session speaker's stored voice (its centroid); EnrolmentError if it spoke too little."""
    speaker = _speaker(storage, session_id, speaker_id)
    if not speaker.centroid or speaker.seconds < MIN_ENROL_SECONDS:
        raise EnrolmentError(f"{speaker.name} spoke {speaker.seconds:.1f} s in this session; "
                             f"a voice needs at least {MIN_ENROL_SECONDS:.0f} s of speech")
    return Voice(np.asarray(speaker.centroid, dtype=np.float64), speaker.seconds)


def enrol(storage: Storage, name: str, voice: Voice, *, created_by: str | None = None) -> VoiceProfile:
    """A new profile called `name`, or more speech for the existing one of that name (refused
    when the new speech does not sound like it)."""
    existing = next((p for p in storage.list_profiles() if p.name.lower() == " ".join(name.split()).lower()), None)
    if existing is None:
        return storage.add_profile(name, voice.embedding.tolist(), voice.seconds, created_by=created_by)
    similarity = float(np.dot(_unit(existing.embedding), voice.embedding))
    if similarity < MATCH_THRESHOLD:
        raise EnrolmentError(f"this speech does not sound like the voice {existing.name!r} "
                             f"(similarity {similarity:.2f}, below {MATCH_THRESHOLD:.2f}): "
                             "is it another person? Give it another name")
    return storage.improve_profile(existing.id, voice.embedding.tolist(), voice.seconds)


def remember_speaker(storage: Storage, session_id: str, speaker_id: int, name: str, *,
                     created_by: str | None = None) -> VoiceProfile:
    """"Remember this voice": a profile from a session speaker, which it then names."""
    profile = enrol(storage, name, voice_of_speaker(storage, session_id, speaker_id), created_by=created_by)
    for other in storage.list_speakers(session_id):  # two speakers never share a profile
        if other.profile_id == profile.id and other.id != speaker_id:
            _unname(storage, other, refused=False)
    storage.set_speaker_profile(session_id, speaker_id, profile.id, by="person", name=profile.name)
    return profile


def undo_match(storage: Storage, session_id: str, speaker_id: int) -> None:
    """A wrong match undone: the speaker goes back to "Speaker N" and no profile names it again."""
    _unname(storage, _speaker(storage, session_id, speaker_id), refused=True)


def profile_json(profile: VoiceProfile, uses: int | None = None) -> dict:
    """A profile as the API and `voices --json` show it: never the embedding (a voice print
    does not leave the app)."""
    body = {"id": profile.id, "name": profile.name, "seconds": round(profile.seconds, 1),
            "recordings": profile.recordings, "created_by": profile.created_by,
            "created_at": profile.created_at, "updated_at": profile.updated_at}
    return body if uses is None else {**body, "sessions_named": uses}


# -- recognition ------------------------------------------------------------------------------

def match(speakers: list[SpeakerRow], profiles: list[VoiceProfile], *, threshold: float = MATCH_THRESHOLD,
          min_seconds: float = MIN_MATCH_SECONDS) -> dict[int, tuple[str, float]]:
    """speaker id -> (profile id, similarity) for the speakers Scribe may name: the most
    similar pairs first, each speaker and each profile used once, never below `threshold`."""
    held = {s.profile_id for s in speakers if s.profile_by == "person" and s.profile_id}
    open_speakers = [s for s in speakers if s.profile_by in (None, "auto") and s.centroid
                     and s.seconds >= min_seconds]
    free = [p for p in profiles if p.id not in held]
    if not open_speakers or not free:
        return {}
    similarity = (_unit(np.array([s.centroid for s in open_speakers]))
                  @ _unit(np.array([p.embedding for p in free])).T)
    chosen: dict[int, tuple[str, float]] = {}
    used: set[str] = set()
    for flat in np.argsort(-similarity, axis=None):
        row, col = np.unravel_index(flat, similarity.shape)
        score = float(similarity[row, col])
        if score < threshold:
            break
        speaker, profile = open_speakers[row], free[col]
        if speaker.id not in chosen and profile.id not in used:
            chosen[speaker.id] = (profile.id, score)
            used.add(profile.id)
    return chosen


def recognise(storage: Storage, session_id: str, *, threshold: float = MATCH_THRESHOLD) -> dict[int, str]:
    """Name a session's speakers by the profiles they match (and unname recognised speakers
    that no longer match). Returns speaker id -> profile name for the speakers named now."""
    profiles = storage.list_profiles()
    speakers = storage.list_speakers(session_id)
    if not profiles and not any(s.profile_by == "auto" for s in speakers):
        return {}
    chosen = match(speakers, profiles, threshold=threshold)
    names = {p.id: p.name for p in profiles}
    named = {}
    for speaker in speakers:
        if speaker.id in chosen:
            profile_id, score = chosen[speaker.id]
            named[speaker.id] = names[profile_id]
            if speaker.profile_id != profile_id or speaker.profile_by != "auto":
                log.info("session=%s speaker %d is %r (similarity %.2f)", session_id, speaker.id,
                         names[profile_id], score)
                storage.set_speaker_profile(session_id, speaker.id, profile_id, by="auto", name=names[profile_id])
        elif speaker.profile_by == "auto":
            _unname(storage, speaker, refused=False)
    return named


def _unname(storage: Storage, speaker: SpeakerRow, *, refused: bool) -> None:
    storage.set_speaker_profile(speaker.session_id, speaker.id, None, by="refused" if refused else None,
                                name=default_speaker_name(speaker.id))


def _speaker(storage: Storage, session_id: str, speaker_id: int) -> SpeakerRow:
    from scribe.errors import NotFoundError

    for speaker in storage.list_speakers(session_id):
        if speaker.id == speaker_id:
            return speaker
    raise NotFoundError(f"no speaker {speaker_id} in session {session_id!r}")


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
