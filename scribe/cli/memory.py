"""`voices` and `vocabulary`: the team's memory on the command line (with their API twins).

Each command runs on the database, or through the running app's API when the app holds it;
both ways print the same lines and the same `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from scribe.api_client import ApiClient
from scribe.cli.common import add_db_flag, open_storage
from scribe.errors import ScribeError


def register(sub: Any) -> None:
    _add_voices(sub)
    _add_vocabulary(sub)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_db_flag(parser)


def _add_voices(sub: Any) -> None:
    p = sub.add_parser("voices", help="voice profiles: named voices recognised in every session")
    actions = p.add_subparsers(dest="action", required=True)
    _json_flag(actions.add_parser("list", help="the profiles"))
    add = actions.add_parser("add", help="remember a session speaker's voice under NAME (or add it to NAME's)")
    add.add_argument("session_id")
    add.add_argument("speaker_id", type=int)
    add.add_argument("name")
    _json_flag(add)
    enroll = actions.add_parser("enroll", help="a profile from a recording of one person speaking")
    enroll.add_argument("name")
    enroll.add_argument("file")
    _json_flag(enroll)
    rename = actions.add_parser("rename", help="rename a profile (and the speakers it names)")
    rename.add_argument("id")
    rename.add_argument("name")
    _json_flag(rename)
    delete = actions.add_parser("delete", help="delete a profile and its voice print; named speakers "
                                "keep the name as text")
    delete.add_argument("id")
    _json_flag(delete)
    undo = actions.add_parser("undo", help="undo a recognised voice: that speaker stays Speaker N")
    undo.add_argument("session_id")
    undo.add_argument("speaker_id", type=int)
    _json_flag(undo)
    p.set_defaults(func=cmd_voices, remote=voices_through_api)


def _add_vocabulary(sub: Any) -> None:
    p = sub.add_parser("vocabulary", help="the team's words (names, products, jargon) given to the models")
    actions = p.add_subparsers(dest="action", required=True)
    _json_flag(actions.add_parser("list", help="the terms and where each came from"))
    add = actions.add_parser("add", help="add terms (each argument one term)")
    add.add_argument("terms", nargs="+", metavar="TERM")
    _json_flag(add)
    remove = actions.add_parser("remove", help="remove a term")
    remove.add_argument("term")
    _json_flag(remove)
    p.set_defaults(func=cmd_vocabulary, remote=vocabulary_through_api)


# -- on the database ---------------------------------------------------------------
def cmd_voices(args: argparse.Namespace) -> int:
    from scribe import voices

    _settings, storage = open_storage(args)
    try:
        if args.action == "list":
            return print_profiles([voices.profile_json(p, storage.profile_uses(p.id))
                                   for p in storage.list_profiles()], args.json)
        if args.action == "add":
            profile = voices.remember_speaker(storage, args.session_id, args.speaker_id, args.name)
            return print_profile(voices.profile_json(profile, storage.profile_uses(profile.id)), args)
        if args.action == "enroll":
            voice = voices.voice_from_file(_existing(args.file))
            profile = voices.enrol(storage, args.name, voice)
            return print_profile({**voices.profile_json(profile, storage.profile_uses(profile.id)),
                                  "warning": voice.warning}, args)
        if args.action == "rename":
            profile = storage.rename_profile(args.id, args.name)
            return print_profile(voices.profile_json(profile, storage.profile_uses(profile.id)), args)
        if args.action == "undo":
            voices.undo_match(storage, args.session_id, args.speaker_id)
            return print_done({"session_id": args.session_id, "speaker_id": args.speaker_id,
                               "profile_id": None}, args)
        kept = storage.delete_profile(args.id)
        return print_done({"id": args.id, "deleted": True, "speakers_keeping_name": kept}, args)
    finally:
        storage.close()


def cmd_vocabulary(args: argparse.Namespace) -> int:
    from scribe.vocabulary import term_json

    _settings, storage = open_storage(args)
    try:
        if args.action == "add":
            storage.add_terms(args.terms)
        elif args.action == "remove":
            storage.remove_term(args.term)
        return print_terms([term_json(t) for t in storage.list_vocabulary()], args.json)
    finally:
        storage.close()


def _existing(path: str) -> Path:
    if not Path(path).is_file():
        raise ScribeError(f"{path}: no such file")
    return Path(path)


# -- through the app's API -----------------------------------------------------------
def voices_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    if args.action == "list":
        return print_profiles(client.json("GET", "/voices")["voices"], args.json)
    if args.action == "add":
        return print_profile(client.json("POST", f"/sessions/{args.session_id}/speakers/{args.speaker_id}/voice",
                                         json={"name": args.name}), args)
    if args.action == "enroll":
        path = _existing(args.file)
        with open(path, "rb") as handle:
            return print_profile(client.json("POST", "/voices/enroll", files={"file": (path.name, handle)},
                                             data={"name": args.name}), args)
    if args.action == "rename":
        return print_profile(client.json("PATCH", f"/voices/{args.id}", json={"name": args.name}), args)
    if args.action == "undo":
        return print_done(client.json("DELETE", f"/sessions/{args.session_id}/speakers/{args.speaker_id}/voice"),
                          args)
    return print_done(client.json("DELETE", f"/voices/{args.id}"), args)


def vocabulary_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    from urllib.parse import quote

    if args.action == "add":
        client.json("POST", "/vocabulary", json={"terms": args.terms})
    elif args.action == "remove":
        client.json("DELETE", f"/vocabulary/{quote(args.term, safe='')}")
    return print_terms(client.json("GET", "/vocabulary")["terms"], args.json)


# -- printing (both ways) -------------------------------------------------------------
def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") if epoch else "-"


def print_profiles(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no voice profiles yet: `voices add SESSION_ID SPEAKER_ID NAME` or `voices enroll NAME FILE`")
    for r in rows:
        print(f"{r['id']}  {r['name']!s:<30} {r['seconds']:7.1f} s  {r['recordings']:>2} recording(s)  "
              f"names {r.get('sessions_named', 0)} speaker(s)  {_when(r['updated_at'])}")
    return 0


def print_profile(row: dict[str, Any], args: argparse.Namespace) -> int:
    if row.get("warning"):
        print(f"warning: {row['warning']}", file=sys.stderr)
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        print(f"{row['id']}  {row['name']}  ({row['seconds']:.1f} s of speech from {row['recordings']} "
              "recording(s))")
    return 0


def print_done(row: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(row, indent=2))
    elif "deleted" in row:
        print(f"deleted voice {row['id']}; {row['speakers_keeping_name']} session speaker(s) keep the name as text")
    else:
        print(f"speaker {row['speaker_id']} of {row['session_id']} is no longer named by a voice profile")
    return 0


def print_terms(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        source = r["source"] + (f" ({r['detail']})" if r.get("detail") else "")
        print(f"{r['term']!s:<42} {source}")
    return 0
