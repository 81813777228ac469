"""Durations as operators write them (issue: `RETAIL_ETL_SCRATCH_RETENTION=0` was refused)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retail_etl.config import load_settings
from retail_etl.core.durations import ACCEPTED, parse_duration
from retail_etl.errors import ConfigurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0), ("90", 90), ("1.5", 1.5), (" 36h ", 129600), ("90s", 90), ("15m", 900), ("7d", 604800),
        ("2w", 1209600), ("1h30m", 5400), ("1d12h", 129600), ("7D", 604800),
        ("PT0S", 0), ("PT90S", 90), ("PT36H", 129600), ("P7D", 604800), ("P1DT12H", 129600), ("P1W", 604800),
        ("pt15m", 900), ("12:00:00", 43200), ("1 day, 0:00:00", 86400),
    ],
)  # fmt: skip
def test_every_accepted_form(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", [0, 90, 1.5, timedelta(hours=2)])
def test_numbers_and_timedeltas(value):
    expected = value if isinstance(value, timedelta) else timedelta(seconds=value)
    assert parse_duration(value) == expected


@pytest.mark.parametrize("text", ["", "7 days", "-5", "P", "PT", "5x", "h", "1h30", "P7", "1m1h", "1:xx", True, -3])
def test_a_bad_duration_names_the_accepted_forms(text):
    with pytest.raises(ConfigurationError) as refused:
        parse_duration(text)
    assert ACCEPTED in str(refused.value)


@pytest.mark.parametrize("name", ["SCRATCH_RETENTION", "VACUUM_RETENTION", "CACHE_EXPIRATION"])
def test_every_duration_setting_takes_them(monkeypatch, name):
    monkeypatch.setenv(f"RETAIL_ETL_{name}", "0")
    assert getattr(load_settings(), name.lower()) == timedelta(0)
    monkeypatch.setenv(f"RETAIL_ETL_{name}", "36h")
    assert getattr(load_settings(), name.lower()) == timedelta(hours=36)
    monkeypatch.setenv(f"RETAIL_ETL_{name}", "a week")
    with pytest.raises(ConfigurationError, match=f"RETAIL_ETL_{name}: .*90s, 15m, 36h, 7d"):
        load_settings()
