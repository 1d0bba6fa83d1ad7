"""`speakers`: list, rename, merge, split or relabel a session's speakers (with its API twin)."""

from __future__ import annotations

import argparse
from typing import Any

from scribe.api_client import ApiClient
from scribe.cli.common import add_db_flag, open_storage, speaker_count, speaker_id
from scribe.cli.printers import print_speakers


def register(sub: Any) -> None:
    p = sub.add_parser("speakers", help="list, rename, merge, split or relabel a session's speakers")
    p.add_argument("session_id")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--rename", nargs=2, metavar=("ID", "NAME"), help="give speaker ID a name")
    action.add_argument("--merge", nargs=2, type=int, metavar=("KEEP", "DROP"),
                        help="DROP's segments become KEEP's")
    action.add_argument("--split", type=int, metavar="ID", help="split speaker ID into two voices")
    action.add_argument("--relabel", type=speaker_count, metavar="N|auto",
                        help="cluster the whole recording again with N voices (auto: estimate)")
    p.add_argument("--json", action="store_true")
    add_db_flag(p)
    p.set_defaults(func=cmd_speakers, remote=speakers_through_api)


def cmd_speakers(args: argparse.Namespace) -> int:
    from scribe import diarization

    settings, storage = open_storage(args)
    try:
        session = storage.get_session(args.session_id)
        if args.rename:
            storage.rename_speaker(session.id, speaker_id(args.rename[0]), args.rename[1])
        elif args.merge:
            storage.merge_speakers(session.id, *args.merge)
        elif args.split is not None:
            diarization.split_speaker(storage, session.id, args.split)
        elif args.relabel is not None:
            storage.set_expected_speakers(session.id, args.relabel or None)
            diarization.relabel_session(storage, session.id, max_speakers=settings.max_speakers)
        rows = diarization.speaker_table(storage, session.id)
    finally:
        storage.close()
    return print_speakers(rows, as_json=args.json)


def speakers_through_api(args: argparse.Namespace, client: ApiClient) -> int:
    session_id = args.session_id
    if args.rename:
        answer = client.rename_speaker(session_id, speaker_id(args.rename[0]), args.rename[1])
    elif args.merge:
        answer = client.merge_speakers(session_id, *args.merge)
    elif args.split is not None:
        answer = client.split_speaker(session_id, args.split)
    elif args.relabel is not None:
        answer = client.relabel_speakers(session_id, args.relabel or None)
    else:
        answer = client.speakers(session_id)
    return print_speakers(answer["speakers"], as_json=args.json)
