"""Durations as people write them: plain seconds, short forms, or ISO 8601.

Operators set retentions and deadlines in environment variables, CLI options and chart values;
they write `0`, `90s`, `36h` or `7d` as often as `P7D`, so every duration setting takes all of
them and a bad one is refused with the forms that would have worked.

>>> parse_duration("0"), parse_duration("90s"), parse_duration("1h30m")
(datetime.timedelta(0), datetime.timedelta(seconds=90), datetime.timedelta(seconds=5400))
>>> parse_duration("P7D") == parse_duration("7d") == parse_duration(604800)
True
>>> parse_duration("PT0S"), parse_duration("12:00:00")
(datetime.timedelta(0), datetime.timedelta(seconds=43200))
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

from ..errors import ConfigurationError

ACCEPTED = "seconds (0, 90, 1.5), short forms (90s, 15m, 36h, 7d, 2w, 1h30m) or ISO 8601 (PT90S, PT36H, P7D, P1DT12H)"
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"(?:(?P<w>\d+(?:\.\d+)?)w)?(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
                    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?")  # fmt: skip
_ISO = re.compile(r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
                  r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?")  # fmt: skip


def _from_parts(match: re.Match[str]) -> timedelta | None:
    parts = {unit: float(value) for unit, value in match.groupdict().items() if value is not None}
    if not parts:
        return None
    return timedelta(seconds=sum(value * _UNITS[unit] for unit, value in parts.items()))


def parse_duration(value: object) -> timedelta:
    """`value` as a non-negative timedelta; ConfigurationError listing the accepted forms if it is none.

    >>> try:
    ...     parse_duration("7 days")
    ... except ConfigurationError as error:
    ...     print(error)  # doctest: +ELLIPSIS
    '7 days' is not a duration: write seconds (0, 90, 1.5), short forms (90s, 15m, 36h, 7d, 2w, 1h30m) or ...
    """
    if isinstance(value, timedelta):
        duration: timedelta | None = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        duration = timedelta(seconds=value)
    else:
        text = str(value).strip()
        duration = None
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            duration = timedelta(seconds=float(text))
        elif (short := _SHORT.fullmatch(text.lower())) is not None:
            duration = _from_parts(short)
        elif (iso := _ISO.fullmatch(text.upper())) is not None and not text.upper().endswith("T"):
            duration = _from_parts(iso)
        elif ":" in text:  # what these settings took before: HH:MM:SS, "1 day, 0:00:00"
            try:
                duration = TypeAdapter(timedelta).validate_python(text)
            except ValidationError:
                duration = None
    if duration is None or duration < timedelta(0):
        raise ConfigurationError(f"{value!r} is not a duration: write {ACCEPTED}")
    return duration
