"""Transcripts out: txt, md, srt, vtt, json. Pure functions over stored rows."""

from __future__ import annotations

import json
import re
from typing import Callable, Sequence

from scribe.core import SegmentRow, SessionRow, one_line
from scribe.timelabels import iso_utc, local_datetime, mmss, subtitle_time

FORMATS = ("txt", "md", "srt", "vtt", "json")


def plain_text(segments: Sequence[SegmentRow]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def transcript_lines(segments: Sequence[SegmentRow]) -> list[str]:
    """`[mm:ss] Speaker: text` for a person to read: in (seq, idx) order whatever order
    chunks finished in, blank segments left out, the speaker named where the turn changes."""
    ordered = [s for s in sorted(segments, key=lambda s: (s.seq, s.idx)) if s.text.strip()]
    return [f"[{mmss(s.start_ms)}] {_turn(s, ordered[n - 1] if n else None)}{s.text.strip()}"
            for n, s in enumerate(ordered)]


def _turn(segment: SegmentRow, previous: SegmentRow | None) -> str:
    changed = segment.speaker and (previous is None or previous.speaker != segment.speaker)
    return f"{segment.speaker}: " if changed else ""


def cited_transcript(segments: Sequence[SegmentRow]) -> str:
    """`[mm:ss] Speaker: text` for a model to read and cite times from: every line names its
    speaker (a model cannot look back for the last turn), whitespace folded to one line."""
    return "\n".join(f"[{mmss(s.start_ms)}] {s.speaker + ': ' if s.speaker else ''}{' '.join(s.text.split())}"
                     for s in segments if s.text.strip())


def _label(seg: SegmentRow) -> str:
    return f"{seg.speaker}: " if seg.speaker else ""


def _at_changes(segments: Sequence[SegmentRow]) -> list[tuple[SegmentRow, str]]:
    """Each segment with its speaker label only where the speaker changes (a turn)."""
    out, previous = [], None
    for seg in segments:
        out.append((seg, _label(seg) if seg.speaker != previous else ""))
        previous = seg.speaker
    return out


def recorded_on(session: SessionRow) -> str:
    """When the session was recorded, in the server's local time: `2025-03-04 09:30`."""
    return local_datetime(session.created_at)


def to_txt(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    head = [one_line(session.title), f"{recorded_on(session)} · {mmss(session.duration_ms)}", ""]
    lines = [f"[{mmss(s.start_ms)}] {label}{s.text}" for s, label in _at_changes(segments)]
    return "\n".join(head + lines) + "\n"


def to_md(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    head = [f"# {md_escape(one_line(session.title))}", "",
            f"*{recorded_on(session)}, {mmss(session.duration_ms)}, {md_escape(session.source)} session "
            f"`{session.id}`, {md_escape(one_line(session.backend))} / "
            f"{md_escape(one_line(session.model))}*", ""]
    body = [f"- **[{mmss(s.start_ms)}]** {md_escape(one_line(label + s.text))}" for s, label in _at_changes(segments)]
    return "\n".join(head + body) + "\n"


_MD_ALWAYS = re.compile(r"([\\`*_{}\[\]<>|~])")
_MD_LINE_START = re.compile(r"^(\s*)([#+\-]|\d+[.)])")


def md_escape(text: str) -> str:
    """Markdown metacharacters escaped, so a transcript (or a title) stays text.

    Characters that mark up anywhere (emphasis, code, links, HTML, tables) are always
    escaped; ones that only matter at the start of a line (headings, list items, `1.`)
    only there. A full stop or a dash inside a sentence stays as it is."""
    escaped = _MD_ALWAYS.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + _escape_marker(m.group(2)), escaped)


def _escape_marker(marker: str) -> str:
    """`#` -> `\\#`; `1.` -> `1\\.` (CommonMark escapes punctuation, not digits)."""
    return "\\" + marker if not marker[0].isdigit() else marker[:-1] + "\\" + marker[-1]


def to_srt(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    blocks = []
    for n, (s, label) in enumerate(_at_changes(_timed(segments)), start=1):
        blocks.append(f"{n}\n{subtitle_time(s.start_ms, sep=',')} --> {subtitle_time(s.end_ms, sep=',')}\n"
                      f"{_one_line(label + s.text)}\n")
    return "\n".join(blocks)


def to_vtt(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    cues = [f"{subtitle_time(s.start_ms)} --> {subtitle_time(s.end_ms)}\n{_vtt_text(s)}\n" for s in _timed(segments)]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_text(seg: SegmentRow) -> str:
    # A voice tag is per-cue metadata (players style or show it per cue), so every cue keeps it.
    text = _vtt_escape(_one_line(seg.text))
    return f"<v {_vtt_escape(_one_line(seg.speaker))}>{text}" if seg.speaker else text


def _vtt_escape(text: str) -> str:
    """Cue text (and a voice tag's name, which ends at the first `>`) as text, not markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and VTT; "-->" would start a new timing line.
    return one_line(text).replace("-->", "->")


def _timed(segments: Sequence[SegmentRow]) -> list[SegmentRow]:
    """Cues in time order with end > start, as subtitle players expect."""
    ordered = sorted((s for s in segments if s.text.strip()), key=lambda s: (s.start_ms, s.seq, s.idx))
    out = []
    for s in ordered:
        end = max(s.end_ms, s.start_ms + 1)
        out.append(SegmentRow(**{**s.__dict__, "end_ms": end}))
    return out


def to_json(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    payload = {
        "session_id": session.id,
        "title": session.title,
        "recorded_at": iso_utc(session.created_at),
        "duration": session.duration_ms / 1000,
        "segments": [{"seq": s.seq, "start": s.start_ms / 1000, "end": s.end_ms / 1000,
                      "text": s.text, "speaker": s.speaker, "confidence": s.confidence,
                      "edited": s.edited} for s in segments],
        "text": plain_text(segments),
    }
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


RENDERERS: dict[str, Callable[[SessionRow, Sequence[SegmentRow]], str]] = {
    "txt": to_txt, "md": to_md, "srt": to_srt, "vtt": to_vtt, "json": to_json,
}


def render(fmt: str, session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](session, segments)


MIME_TYPES = {"txt": "text/plain", "md": "text/markdown", "srt": "application/x-subrip",
              "vtt": "text/vtt", "json": "application/json"}


def download_name(session: SessionRow, fmt: str, transcript: str | None = None) -> str:
    """A safe file name: `<title-slug>-<session id>[-final].<fmt>`."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in session.title.lower())
    slug = "-".join(part for part in slug.split("-") if part)[:40] or "session"
    suffix = f"-{transcript}" if transcript and transcript != "live" else ""
    return f"{slug}-{session.id}{suffix}.{fmt}"
