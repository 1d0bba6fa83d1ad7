"""Times as people read them, and the one time-zone rule for dates (server's local time)."""

import datetime as dt
import time

import pytest

from scribe.config import Settings
from scribe.timelabels import (
    day_bounds,
    iso_utc,
    local_date,
    local_datetime,
    mmss,
    parse_mmss,
    picked_days,
    subtitle_time,
    time_zone_note,
    wait_words,
)


@pytest.fixture
def berlin(local_zone):
    """A zone that is not UTC (and has DST), so a UTC-for-local mix-up shows."""
    local_zone("Europe/Berlin")


def test_positions_read_as_mm_ss_and_h_mm_ss():
    assert [mmss(ms) for ms in (0, 999, 61_000, 3_599_999, 3_600_000, 3_723_000, -5)] == \
        ["00:00", "00:00", "01:01", "59:59", "1:00:00", "1:02:03", "00:00"]


def test_labels_parse_back_to_milliseconds():
    assert [parse_mmss(v) for v in ("12:34", "[1:02:03]", "75", "00:05.5", "soon", "-3")] == \
        [754_000, 3_723_000, 75_000, 5_000, None, None]
    assert all(parse_mmss(mmss(ms)) == ms for ms in (0, 59_000, 754_000, 3_723_000))


def test_subtitle_times_have_hours_and_milliseconds():
    assert subtitle_time(3_723_004) == "01:02:03.004"
    assert subtitle_time(5, sep=",") == "00:00:00,005"


def test_waits_read_as_words():
    assert [wait_words(s) for s in (0, 12.4, 59.6, 125, 3600)] == ["0 s", "12 s", "1 min 00 s", "2 min 05 s",
                                                                     "60 min 00 s"]


def test_dates_are_in_the_servers_local_time(berlin):
    winter, summer = 1_736_000_000, 1_751_000_000  # 2025-01-04 14:13 UTC, 2025-06-27 04:53 UTC
    assert local_datetime(winter) == "2025-01-04 15:13"
    assert local_datetime(summer) == "2025-06-27 06:53"
    assert iso_utc(winter) == "2025-01-04T14:13:20Z"
    assert local_date(1_735_947_000) == dt.date(2025, 1, 4)  # 23:30 UTC on the 3rd is the 4th in Berlin
    assert "CET" in time_zone_note() and "local time" in time_zone_note()


def test_a_picked_day_spans_local_midnight_to_midnight(berlin):
    since, until = day_bounds(dt.date(2025, 1, 4), dt.date(2025, 1, 4))
    assert (since, until) == (1_735_945_200.0, 1_736_031_600.0)  # 23:00 UTC on the 3rd to 23:00 on the 4th
    assert picked_days((dt.date(2025, 1, 4),)) == (since, until)  # a half-picked range is that day
    assert picked_days(dt.date(2025, 1, 4)) == (since, until)
    assert picked_days(()) == (None, None) and picked_days(None) == (None, None)
    assert picked_days((dt.date(2025, 1, 4), dt.date(2025, 1, 5)))[1] == until + 86_400


def test_the_zone_rule_follows_the_machine():
    assert local_datetime(0) == time.strftime("%Y-%m-%d %H:%M", time.localtime(0))


def test_the_local_zone_converts_timestamps_with_its_dst_rules(berlin):
    import pandas as pd

    from scribe.timelabels import local_zone

    stamps = pd.to_datetime(pd.Series([1_736_000_000, 1_751_000_000, None]), unit="s", utc=True)
    local = stamps.dt.tz_convert(local_zone(Settings.from_env().time_zone))
    assert list(local.dt.strftime("%H:%M")[:2]) == ["15:13", "06:53"] and pd.isna(local[2])
