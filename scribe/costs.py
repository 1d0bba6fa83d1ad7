"""Estimated cost of a session's transcription: stored tokens x the backend's price table (`scribe.backends`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scribe import backends
from scribe.storage import Storage


@dataclass
class CostLine:
    backend: str
    model: str
    chunks: int
    input_tokens: int
    output_tokens: int
    dollars: float | None
    """None when the model is not in the price table."""


@dataclass
class SessionCost:
    lines: list[CostLine] = field(default_factory=list)

    @property
    def dollars(self) -> float:
        """Sum over priced lines (local and stub lines cost 0)."""
        return sum(line.dollars or 0.0 for line in self.lines)

    @property
    def input_tokens(self) -> int:
        return sum(line.input_tokens for line in self.lines)

    @property
    def output_tokens(self) -> int:
        return sum(line.output_tokens for line in self.lines)

    @property
    def unpriced_models(self) -> list[str]:
        return [line.model for line in self.lines if line.dollars is None]

    def label(self) -> str:
        """E.g. `~$0.0123 (52,300 tokens in, 1,200 out)`; says when a model has no price."""
        text = f"~${self.dollars:.4f} ({self.input_tokens:,} tokens in, {self.output_tokens:,} out)"
        if self.unpriced_models:
            text += f"; no price known for {', '.join(self.unpriced_models)}"
        return text


def session_cost(storage: Storage, session_id: str) -> SessionCost:
    """What the session's transcription cost, from the tokens stored per chunk.

    Counts each chunk's latest successful call; failed attempts (usually not
    billed) and re-transcriptions that replaced a chunk are not counted.
    """
    cost = SessionCost()
    for row in storage.session_usage(session_id):
        metered = row["backend"] in backends.metered()
        dollars = backends.estimate_cost(row["backend"], row["model"], int(row["input_tokens"]),
                                         int(row["output_tokens"]), audio=True) if metered else 0.0
        cost.lines.append(CostLine(row["backend"], row["model"], int(row["chunks"]),
                                   int(row["input_tokens"]), int(row["output_tokens"]), dollars))
    return cost
