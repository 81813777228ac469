"""Run dates: parsing them, ranges of them, and the default day of a scheduled run.

>>> [day.isoformat() for day in date_range(parse_date("2024-02-28"), parse_date("2024-03-01"))]
['2024-02-28', '2024-02-29', '2024-03-01']
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from ..errors import ConfigurationError


def parse_date(value: str) -> date:
    """A YYYY-MM-DD date, or a ConfigurationError that says what was expected."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{value!r} is not a date in YYYY-MM-DD form") from None


def date_range(start: date, end: date) -> list[date]:
    """Every date from start to end, inclusive."""
    if end < start:
        raise ConfigurationError(f"end {end} is before start {start}")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def default_run_date(scheduled: datetime | None, timezone: str) -> date:
    """The day before the scheduled time (now, if unscheduled), in the schedule's time zone.

    >>> default_run_date(datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("UTC")), "America/New_York")
    datetime.date(2024, 3, 8)
    """
    moment = pd.Timestamp(scheduled or datetime.now(tz=ZoneInfo("UTC")))
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    local: date = moment.tz_convert(ZoneInfo(timezone)).date()
    return local - timedelta(days=1)
