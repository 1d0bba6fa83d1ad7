"""Transcripts out: txt, md, srt, vtt, json. Pure functions over stored rows."""

from __future__ import annotations

import json
import re
import time
from typing import Callable, Sequence

from scribe.core import SegmentRow, SessionRow

FORMATS = ("txt", "md", "srt", "vtt", "json")


def clock(ms: int, *, sep: str = ".", hours: bool = True) -> str:
    """`HH:MM:SS.mmm` (or `,` for SRT)."""
    ms = max(0, int(ms))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, millis = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{millis:03d}" if hours else f"{m:02d}:{s:02d}"


def mmss(ms: int) -> str:
    """`mm:ss`, or `h:mm:ss` past an hour."""
    total = max(0, int(ms)) // 1000
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def plain_text(segments: Sequence[SegmentRow]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


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
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(session.created_at))


def to_txt(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    head = [session.title, f"{recorded_on(session)} · {mmss(session.duration_ms)}", ""]
    lines = [f"[{mmss(s.start_ms)}] {label}{s.text}" for s, label in _at_changes(segments)]
    return "\n".join(head + lines) + "\n"


def to_md(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    head = [f"# {md_escape(session.title)}", "",
            f"*{recorded_on(session)}, {mmss(session.duration_ms)}, {session.source} session "
            f"`{session.id}`, {session.backend} / {session.model}*", ""]
    body = [f"- **[{mmss(s.start_ms)}]** {md_escape(label + s.text)}" for s, label in _at_changes(segments)]
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
        blocks.append(f"{n}\n{clock(s.start_ms, sep=',')} --> {clock(s.end_ms, sep=',')}\n"
                      f"{label}{_one_line(s.text)}\n")
    return "\n".join(blocks)


def to_vtt(session: SessionRow, segments: Sequence[SegmentRow]) -> str:
    cues = [f"{clock(s.start_ms)} --> {clock(s.end_ms)}\n{_vtt_text(s)}\n" for s in _timed(segments)]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_text(seg: SegmentRow) -> str:
    # A voice tag is per-cue metadata (players style or show it per cue), so every cue keeps it.
    text = _one_line(seg.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<v {seg.speaker}>{text}" if seg.speaker else text


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and VTT; "-->" would start a new timing line.
    return " ".join(text.split()).replace("-->", "->")


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
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.created_at)),
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
