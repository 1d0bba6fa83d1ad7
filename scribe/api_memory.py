"""The team's memory under `/api`: voice profiles and the vocabulary.

Routes are added to the API's router by `add_memory_routes` (called from `scribe.api`), so
they share its access gate, error shapes and the process's Storage. Profiles are listed
without their embeddings: a voice print never leaves the app.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from scribe import voices
from scribe.access import writable_session
from scribe.api_auth import current_principal
from scribe.errors import AccessDeniedError, AudioDecodeError, ScribeError
from scribe.identity import Principal
from scribe.storage.vocabulary import clean_term
from scribe.vocabulary import term_json
from scribe.voices import profile_json

ENROL_PATH = "/voices/enroll"
"""Takes an audio file: the access gate gives it the upload size limit."""


FormReader = Callable[[Request, int], Awaitable[Any]]


def add_memory_routes(router: APIRouter, context: Any, read_form: FormReader) -> None:
    """`read_form(request, max_bytes)`: the API's multipart reader (a size-bounded body)."""
    _add_voice_routes(router, context, read_form)
    _add_vocabulary_routes(router, context)


def _name(body: dict[str, Any]) -> str:
    if not isinstance(body.get("name"), str):
        raise ScribeError('send {"name": "..."}')
    return body["name"]


def may_delete(caller: Principal, created_by: str | None, what: str) -> None:
    """Profiles and terms are team data: whoever added one, or an admin, deletes it (one added
    before sign-in, with no creator, by anyone who may use the API)."""
    if created_by and created_by != caller.user_id and not caller.is_admin:
        raise AccessDeniedError(f"only whoever added this {what} or an administrator may delete it")


def _add_voice_routes(router: APIRouter, context: Any, read_form: FormReader) -> None:
    def storage():
        return context.runtime().storage

    @router.get("/voices", summary="voice profiles (names, seconds of speech; never the voice print)")
    def list_voices() -> dict[str, Any]:
        db = storage()
        return {"voices": [profile_json(p, db.profile_uses(p.id)) for p in db.list_profiles()]}

    @router.post(ENROL_PATH, status_code=201, summary="a voice profile from a recording of one person "
                 "(multipart: name, file); more speech for the profile of that name")
    async def enroll(request: Request, who: Principal = Depends(current_principal)) -> JSONResponse:
        form = await read_form(request, context.runtime().settings.max_upload_mb * 1024 * 1024)
        try:
            return await run_in_threadpool(_enroll_upload, storage(), form, who.user_id)
        finally:
            await form.close()

    @router.post("/sessions/{session_id}/speakers/{speaker_id}/voice", status_code=201,
                 summary="remember this speaker's voice under a name (a new profile, or more speech for it)")
    def remember(session_id: str, speaker_id: int,
                 body: dict[str, Any] = Body(examples=[{"name": "Ana Lima"}]),
                 who: Principal = Depends(current_principal)) -> dict[str, Any]:
        writable_session(storage(), who, session_id)  # relabelling a session: its owner or an admin
        profile = voices.remember_speaker(storage(), session_id, speaker_id, _name(body), created_by=who.user_id)
        return profile_json(profile, storage().profile_uses(profile.id))

    @router.delete("/sessions/{session_id}/speakers/{speaker_id}/voice",
                   summary="undo a recognised voice: the speaker goes back to Speaker N for good")
    def undo(session_id: str, speaker_id: int, who: Principal = Depends(current_principal)) -> dict[str, Any]:
        writable_session(storage(), who, session_id)
        voices.undo_match(storage(), session_id, speaker_id)
        return {"session_id": session_id, "speaker_id": speaker_id, "profile_id": None}

    @router.patch("/voices/{profile_id}", summary="rename a voice profile (and the speakers it names)")
    def rename(profile_id: str, body: dict[str, Any] = Body(examples=[{"name": "Ana"}])) -> dict[str, Any]:
        profile = storage().rename_profile(profile_id, _name(body))
        return profile_json(profile, storage().profile_uses(profile.id))

    @router.delete("/voices/{profile_id}", summary="delete a voice profile and its voice print; "
                   "speakers it named keep the name as text")
    def delete(profile_id: str, who: Principal = Depends(current_principal)) -> dict[str, Any]:
        may_delete(who, storage().get_profile(profile_id).created_by, "voice")
        return {"id": profile_id, "deleted": True, "speakers_keeping_name": storage().delete_profile(profile_id)}


def _enroll_upload(db, form, created_by: str | None) -> JSONResponse:
    upload, name = form.get("file"), form.get("name")
    if upload is None or isinstance(upload, str) or not isinstance(name, str):
        raise ScribeError("send multipart/form-data with `name` and a `file` of one person speaking")
    filename = Path(upload.filename or "voice").name or "voice"
    with tempfile.TemporaryDirectory(prefix="scribe-voice-") as tmp:
        path = Path(tmp) / filename
        with path.open("wb") as out:
            while block := upload.file.read(1 << 20):
                out.write(block)
        try:
            voice = voices.voice_from_file(path)
        except AudioDecodeError as exc:  # name the upload, not this server's temp folder
            raise AudioDecodeError(str(exc).replace(f"{tmp}/", "")) from None
    profile = voices.enrol(db, name, voice, created_by=created_by)
    return JSONResponse({**profile_json(profile, db.profile_uses(profile.id)), "warning": voice.warning},
                        status_code=201)


def _add_vocabulary_routes(router: APIRouter, context: Any) -> None:
    def storage():
        return context.runtime().storage

    @router.get("/vocabulary", summary="the team vocabulary, each term with where it came from")
    def list_terms() -> dict[str, Any]:
        return {"terms": [term_json(t) for t in storage().list_vocabulary()]}

    @router.post("/vocabulary", status_code=201, summary="add terms (all or none; ones already there are kept)")
    def add_terms(body: dict[str, Any] = Body(examples=[{"terms": ["Siobhan", "DuckDB"]}]),
                  who: Principal = Depends(current_principal)) -> dict[str, Any]:
        terms = body.get("terms")
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ScribeError('send {"terms": ["...", ...]}')
        source = "correction" if body.get("source") == "correction" else "typed"
        detail = body.get("detail") if isinstance(body.get("detail"), str) else None
        added = storage().add_terms(terms, source=source, detail=detail, created_by=who.user_id)
        return {"added": added, "terms": [term_json(t) for t in storage().list_vocabulary()]}

    @router.delete("/vocabulary/{term}", summary="remove a term")
    def remove(term: str, who: Principal = Depends(current_principal)) -> dict[str, Any]:
        may_delete(who, storage().get_term(term).created_by, "term")
        storage().remove_term(term)
        return {"removed": clean_term(term)}
