"""Is transcription falling behind? The one verdict, for the Record page and Analytics alike.

Nothing is ever dropped: the writer queue is unbounded and every chunk is on
disk before it is queued. When the backend is slower than speech (a rate limit,
a slow CPU, an outage with retries), the backlog grows and the pages say so.
The verdict is judged from one quantity, the audio not yet transcribed
(`PipelineStats.backlog_seconds`: queued, in flight, and still being written),
against SCRIBE_BACKLOG_WARN_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from scribe.pipeline import PipelineStats
from scribe.timelabels import wait_words


@dataclass(frozen=True)
class Backlog:
    audio_seconds: float
    """Audio not yet transcribed (queued, in flight, or still being written)."""
    chunks: int
    """Chunks queued or in flight, plus those still in the writer's queue."""
    warn: bool
    """True once `audio_seconds` passes `warn_seconds`: transcription is falling behind."""
    warn_seconds: float
    """The line it was judged against (SCRIBE_BACKLOG_WARN_SECONDS)."""
    catch_up_seconds: float | None = None
    """Least time to clear the queue under the backend's rate limit, if it has one."""

    def message(self) -> str | None:
        """A sentence for the page when `warn` is set, else None."""
        if not self.warn:
            return None
        text = (f"Transcription is behind: {wait_words(self.audio_seconds)} of audio waiting "
                f"({self.chunks} chunks). Recording continues and no audio is dropped; "
                "the transcript will catch up.")
        if self.catch_up_seconds:
            text += f" Under the rate limit that takes at least {wait_words(self.catch_up_seconds)}."
        return text


def judge_backlog(audio_seconds: float, chunks: int, *, warn_seconds: float,
                  requests_per_minute: float | None = None) -> Backlog:
    """Keeping up or falling behind: `audio_seconds` not yet transcribed, over `warn_seconds`
    is behind. `requests_per_minute` is the backend's limit, if any."""
    catch_up = chunks / requests_per_minute * 60.0 if requests_per_minute and chunks else None
    return Backlog(audio_seconds=audio_seconds, chunks=chunks, warn=audio_seconds > warn_seconds,
                   warn_seconds=warn_seconds, catch_up_seconds=catch_up)


def assess_backlog(stats: PipelineStats, *, warn_seconds: float,
                   requests_per_minute: float | None = None) -> Backlog:
    """The live queue's backlog (`Runtime.backlog()` calls this for both pages)."""
    return judge_backlog(stats.backlog_seconds, stats.queued + stats.in_flight + stats.intake,
                         warn_seconds=warn_seconds, requests_per_minute=requests_per_minute)
