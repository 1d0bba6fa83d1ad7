"""A synthesized meeting transcript of any length, with planted decisions and action items.

Used by the summary tests and `benchmarks/bench_summary.py`. Deterministic for a seed.
"""

from __future__ import annotations

import random

from scribe.core import SegmentRow

SPEAKERS = ("Alice", "Bob", "Carol")
TOPICS = ("budget review", "launch date", "customer feedback", "hiring plan", "database migration",
          "support backlog", "marketing campaign", "release checklist")
CHATTER = (
    "I think the {t} is in reasonable shape but there are a few open questions.",
    "Looking at the numbers for the {t}, last month was a bit better than we expected.",
    "Honestly the {t} has been taking more time than any of us planned for.",
    "There was a long thread about the {t} and most people seemed fairly positive.",
    "Yeah, that matches what I heard from the other team about the {t}.",
    "Right, and the dashboard for the {t} still shows the old figures from last quarter.",
    "Okay, so moving on, is there anything else about the {t} that we should cover today?",
    "Sure, it is mostly a question of who has time in the next couple of weeks.",
    "Hmm, I am not completely sure about that, let us look at the details again.",
    "The main risk with the {t} is that two people are out on holiday in December.",
)
DECISIONS = (
    "We agreed to move the launch date to the second week of March.",
    "We decided to freeze the budget review numbers until the board meeting.",
    "The team signed off on the database migration plan as written.",
)
ACTIONS = (
    ("Bob will send the updated budget spreadsheet to finance by Friday.", "Bob"),
    ("Carol will draft the customer feedback survey before next week.", "Carol"),
    ("I'll book the room for the release checklist review tomorrow.", None),
)


def meeting_segments(words: int = 10_000, *, session_id: str = "s-gen", seed: int = 7,
                     seconds_per_word: float = 0.36) -> tuple[list[SegmentRow], dict[str, SegmentRow]]:
    """Segments totalling about `words` words (~1 hour at 10k), and {planted sentence: its segment}."""
    rng = random.Random(seed)
    planted_lines = [d for d in DECISIONS] + [a for a, _owner in ACTIONS]
    plant_at = {int(words * (i + 1) / (len(planted_lines) + 1)): line for i, line in enumerate(planted_lines)}
    segments: list[SegmentRow] = []
    planted: dict[str, SegmentRow] = {}
    count, clock_ms, seq_len_ms = 0, 0, 15_000
    while count < words:
        due = [k for k in plant_at if k <= count]
        line = plant_at.pop(due[0]) if due else rng.choice(CHATTER).format(t=rng.choice(TOPICS))
        speaker = SPEAKERS[len(segments) % len(SPEAKERS)] if not due else rng.choice(SPEAKERS)
        duration = int(len(line.split()) * seconds_per_word * 1000)
        seq = clock_ms // seq_len_ms
        idx = segments[-1].idx + 1 if segments and segments[-1].seq == seq else 0
        row = SegmentRow(session_id=session_id, seq=seq, idx=idx, start_ms=clock_ms, end_ms=clock_ms + duration,
                         text=line, speaker=speaker, confidence=0.9, no_speech_prob=0.01)
        segments.append(row)
        if due:
            planted[line] = row
        count += len(line.split())
        clock_ms += duration + rng.randint(100, 900)
    return segments, planted
