"""What the commands print, from plain data (rows, dicts, lists), never from a Storage.

The local commands and their API twins (`remote`) hand the same values here, so both
print the same bytes.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from scribe.core import ChunkRow, SessionRow, percentile
from scribe.timelabels import local_datetime, mmss


def print_sessions(rows: list[SessionRow], counts: dict[str, dict[str, int]], *, as_json: bool,
                   source: str) -> int:
    """The list on stdout; an empty one says on stderr where it looked (`source`)."""
    if as_json:
        print(json.dumps([{**r.__dict__, "chunks": counts[r.id]} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no sessions in {source}", file=sys.stderr)
    for r in rows:
        when = local_datetime(r.created_at)
        c = counts[r.id]
        print(f"{r.id}  {when}  {r.duration_ms / 1000:7.1f}s  {r.status:<11} {r.backend:<6} "
              f"{c['done']}/{sum(c.values())} chunks{'  ' + str(c['failed']) + ' failed' if c['failed'] else ''}"
              f"  {r.title}")
    return 0


def print_search(query: str, total: int, hits: list[dict[str, Any]], *, page: int, limit: int,
                 as_json: bool) -> int:
    """Hits as JSON or one line each; exit 1 when nothing matched."""
    if as_json:
        print(json.dumps({"query": query, "total": total, "page": page, "hits": hits},
                         indent=2, ensure_ascii=False))
        return 0
    for h in hits:
        who = f"{h['speaker']}: " if h["speaker"] else ""
        print(f"{h['session_id']}  [{mmss(h['start_ms'])}]  {who}{h['text']}")
    pages = max(1, -(-total // limit))
    print(f"{total} match(es); page {page} of {pages}", file=sys.stderr)
    return 0 if total else 1


def print_summary(summary: Any, session_id: str, version: int, *, as_json: bool) -> int:
    """A `summaries.Summary` as JSON or as text."""
    if as_json:
        print(json.dumps({"session_id": session_id, "version": version, **summary.to_dict()},
                         indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(summary_text(summary, version))
    return 0


def summary_text(summary: Any, version: int) -> str:
    def items(title: str, rows: Iterable[Any]) -> list[str]:
        rows = list(rows)
        lines = [f"\n{title}:"] if rows else []
        for i in rows:
            extra = "".join(f" ({k}: {v})" for k, v in (("owner", i.owner), ("due", i.due)) if v)
            lines.append(f"  [{mmss(i.start_ms)}] {i.text}{extra}")
        return lines

    head = [f"{summary.title}  (version {version}, {summary.backend} {summary.model})", "",
            summary.overview]
    if summary.keywords:
        head.append("\nKeywords: " + ", ".join(summary.keywords))
    body = items("Key points", summary.key_points) + items("Decisions", summary.decisions) + \
        items("Action items", summary.action_items)
    return "\n".join(head + body) + "\n"


def print_deleted(report: dict[str, Any]) -> int:
    """`history.DeleteReport`'s counts (or the API's answer to a delete)."""
    print(f"deleted session {report['session_id']}: {report['segments']} segments, {report['chunks']} chunks, "
          f"{report['summaries']} summaries, {report['audio_files']} audio files")
    return 0


def print_speakers(rows: list[dict[str, Any]], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:>3}  {row['name']:<30} {row['segments']:>5} segments  {row['seconds']:8.1f} s")
    return 0


# -- a session's chunks: timing, failures, what is left ----------------------------
def print_timing(chunks: Sequence[ChunkRow], session_id: str, audio_s: float, wall: float,
                 counts: dict[str, int]) -> None:
    processing = [c.finished_at - c.started_at for c in chunks
                  if c.finished_at and c.started_at and c.status == "done"]
    p50 = percentile(processing, 50) if processing else 0.0
    p95 = percentile(processing, 95) if processing else 0.0
    print(f"session {session_id}: {counts['done']} chunks done, {counts['failed']} failed\n"
          f"audio {audio_s:.1f} s, wall {wall:.1f} s, real-time factor {wall / max(audio_s, 1e-9):.3f}, "
          f"chunk processing p50 {p50:.2f} s, p95 {p95:.2f} s", file=sys.stderr)


def print_failures(chunks: Sequence[ChunkRow], limit: int = 3) -> None:
    """Say why chunks failed: each distinct error once (errors never contain the API key)."""
    errors: dict[str, list[int]] = {}
    for chunk in sorted((c for c in chunks if c.status == "failed"), key=lambda c: c.seq):
        errors.setdefault(chunk.error or "unknown error", []).append(chunk.seq)
    for error, seqs in list(errors.items())[:limit]:
        print(f"{len(seqs)} chunk(s) failed (first seq {seqs[0]}): {error}", file=sys.stderr)


def report_unfinished(chunks: Sequence[ChunkRow], session_id: str) -> int:
    """0 when every chunk of the session is done; else say which are not, why, how to retry, and 1."""
    open_seqs = [c.seq for c in chunks if c.status in ("pending", "processing")]
    failed = [c.seq for c in chunks if c.status == "failed"]
    if not open_seqs and not failed:
        return 0
    if open_seqs:
        print(f"{len(open_seqs)} chunk(s) not transcribed yet (seq {seq_list(open_seqs)}); "
              "the transcript above is incomplete", file=sys.stderr)
    print_failures(chunks)
    print(f"to finish it: python -m scribe retry {session_id}", file=sys.stderr)
    return 1


def seq_list(seqs: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(s) for s in seqs[:limit])
    return shown + (f", ... ({len(seqs) - limit} more)" if len(seqs) > limit else "")


def runs_table(runs: Sequence[Any]) -> str:
    """The chunking lab's runs (`lab.RunResult`) as a fixed-width table."""
    lines = [f"{'policy':<12} {'WER %':>6} {'chunks':>6} {'mean s':>7} {'latency s':>9} "
             f"{'lost':>5} {'dup':>4} {'calls':>5} {'cost $':>8}"]
    for r in runs:
        lines.append(f"{r.policy:<12} {r.wer * 100:6.1f} {r.chunks:6d} {r.mean_chunk_s:7.1f} "
                     f"{r.latency_s:9.1f} {r.words_lost:5d} {r.words_duplicated:4d} {r.calls:5d} "
                     f"{r.cost_usd:8.4f}")
    return "\n".join(lines)
