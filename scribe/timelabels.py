"""Times as people read them, and the one time-zone rule.

Positions and lengths inside a recording are `mm:ss` (`h:mm:ss` past an hour) everywhere:
pages, exports, the CLI and the text a summary model reads and cites back. Dates shown to a
user, and the days a user filters by, are in the server's local time: the app and the CLI
run on the user's machine, so that is the user's clock. Machine-readable stamps (JSON
export, CSV) are ISO 8601 and say their offset.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import zoneinfo
from typing import Any

_MMSS = re.compile(r"^\[?\s*(?:(\d+):)?(\d{1,2}):(\d{2})(?:\.\d+)?\s*\]?$")


# -- positions and lengths in a recording -------------------------------------------
def mmss(ms: int) -> str:
    """`mm:ss`, or `h:mm:ss` past an hour."""
    total = max(0, int(ms)) // 1000
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def parse_mmss(value: str) -> int | None:
    """`12:34`, `[1:02:03]` or `75` (seconds) to milliseconds; None when it is none of these."""
    value = value.strip()
    if match := _MMSS.match(value):
        hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return ((hours * 60 + minutes) * 60 + seconds) * 1000
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number * 1000) if number >= 0 else None


def subtitle_time(ms: int, *, sep: str = ".") -> str:
    """`HH:MM:SS.mmm` as WebVTT wants it (`sep=","` for SRT)."""
    ms = max(0, int(ms))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, millis = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{millis:03d}"


def wait_words(seconds: float) -> str:
    """A wait in words for a sentence: `45 s`, `2 min 05 s`."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


# -- dates: the server's local time -------------------------------------------------
TIME_ZONE_NOTE = "Dates and times in the server's local time"
"""Said next to every date filter (with the zone's name, `time_zone_note()`)."""


def time_zone_note() -> str:
    """`Dates and times in the server's local time (CET).`"""
    return f"{TIME_ZONE_NOTE} ({time.strftime('%Z')})."


def local_datetime(epoch: float) -> str:
    """`2025-03-04 09:30`: when something happened, for a person."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def local_date(epoch: float) -> dt.date:
    """The local calendar day of a moment (what a date filter shows)."""
    return dt.datetime.fromtimestamp(epoch).date()


def today() -> dt.date:
    return dt.date.today()


def day_bounds(first: dt.date, last: dt.date) -> tuple[float, float]:
    """Local days `first`..`last` (inclusive) as [since, until) epoch seconds."""
    since = dt.datetime.combine(first, dt.time.min).timestamp()
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min).timestamp()
    return since, until


def picked_days(picked: object) -> tuple[float | None, float | None]:
    """A `st.date_input` value (one day, a range, a half-picked range, nothing) as
    [since, until) epoch seconds, or (None, None) when no day is picked."""
    days: list[Any] = list(picked) if isinstance(picked, (tuple, list)) else [picked] if picked else []
    return day_bounds(days[0], days[-1]) if days else (None, None)


def iso_utc(epoch: float) -> str:
    """`2025-03-04T08:30:00Z` for machine-readable output (JSON export)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def local_zone(time_zone: str | None = None) -> dt.tzinfo:
    """The server's local zone, for converting pandas timestamps: the named zone (with its
    DST rules) given (`Settings.time_zone`, from TZ), else /etc/localtime's, else the current
    offset from UTC."""
    link = os.path.realpath("/etc/localtime").partition("zoneinfo/")[2]
    for name in ((time_zone or "").lstrip(":"), link):
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue  # a POSIX TZ string such as "CET-1", or no zone database
    return _current_offset()


def _current_offset() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo or dt.UTC
