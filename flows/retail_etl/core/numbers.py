"""Exact numbers from landing text: whole quantities, decimal prices, totals in cents.

Floats round: ``2.00000000000000001`` would become 2 and ``100000.000000000001`` would
pass a 100,000 maximum. So a quantity is a whole number exactly as written (digits, a
sign, optionally ``.0...``), a price is held as an integer count of billionths
(`NANOS`), and a line total is computed from those integers and rounded half up to cents.

>>> import pandas as pd
>>> whole_numbers(pd.Series(["2", "+3.000", "2.00000000000000001", "1e3", ""])).tolist()
[2.0, 3.0, nan, nan, nan]
>>> nanos = price_nanos(pd.Series(["0.335", "100000.000000000001", "1e2", "7"]))
>>> nanos.tolist()
[335000000, -1, -1, 7000000000]
>>> total_cents(pd.Series([3, 1]), pd.Series([335000000, 7000000000])).tolist()
[101, 700]
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Prices are exact to this many decimal places (billionths).
SCALE = 9
NANOS = 10**SCALE
#: Prices must stay below this (so quantity * price in billionths fits 64 bits).
PRICE_CEILING = 10**9
#: The value `price_nanos` gives text that is not a price it can hold exactly.
NOT_A_PRICE = -1

_WHOLE = r"^[+-]?[0-9]+(\.0*)?$"
_DECIMAL = r"^(?P<sign>[+-]?)(?P<units>[0-9]*)(?:\.(?P<fraction>[0-9]*))?$"


def _text(values: pd.Series) -> pa.Array:
    text = pa.array(values.astype("str"), type=pa.large_string(), from_pandas=True)
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def whole_numbers(values: pd.Series) -> pd.Series:
    """Stripped text as float64 where it is a whole number as written, NaN elsewhere."""
    numbers = whole_number_array(_text(values))
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")


def whole_number_array(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`whole_numbers` on Arrow text: float64, null where the text is no whole number."""
    whole = pc.if_else(pc.match_substring_regex(text, _WHOLE), pc.replace_substring_regex(text, r"\.0*$", ""), None)
    return pc.cast(whole, pa.float64())


def decimal_floats(values: pd.Series) -> pd.Series:
    """Decimal text as the nearest float64 (what the published unit_price column holds)."""
    numbers = pc.cast(_text(values), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")


def price_nanos(values: pd.Series) -> pd.Series:
    """Stripped decimal text as an exact count of billionths (int64); `NOT_A_PRICE` where the text
    is no plain decimal, has more than `SCALE` significant decimals, or is not below
    `PRICE_CEILING` in size. Negative prices keep their sign (the checks refuse them)."""
    exact = price_nanos_array(_text(values))
    return pd.Series(exact.to_numpy(zero_copy_only=False), index=values.index, dtype="int64")


def price_nanos_array(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`price_nanos` on Arrow text (int64, never null)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    parts = pc.extract_regex(text, _DECIMAL)
    units = pc.utf8_ltrim(parts.field("units"), "0")
    fraction = pc.utf8_rtrim(parts.field("fraction"), "0")
    digits = pc.add(pc.binary_length(parts.field("units")), pc.binary_length(parts.field("fraction")))
    valid = pc.and_(
        pc.and_(pc.is_valid(parts), pc.greater(digits, 0)),
        pc.and_(pc.less_equal(pc.binary_length(units), SCALE), pc.less_equal(pc.binary_length(fraction), SCALE)),
    )
    whole = pc.cast(pc.if_else(pc.and_(valid, pc.not_equal(units, "")), units, "0"), pa.int64())
    padded = pc.utf8_rpad(pc.if_else(valid, fraction, ""), SCALE, "0")
    nanos = pc.add(pc.multiply(whole, NANOS), pc.cast(padded, pa.int64()))
    signed = pc.if_else(pc.equal(parts.field("sign"), "-"), pc.negate(nanos), nanos)
    return pc.if_else(valid, signed, NOT_A_PRICE).fill_null(NOT_A_PRICE)


def float_text(value: float | None) -> str:
    """A float as its shortest decimal, never in exponent form (1e-05 is 0.00001); NaN and None
    as empty text, infinities as ``inf``/``-inf`` (which no check accepts)."""
    if value is None or np.isnan(value):
        return ""
    if not np.isfinite(value):
        return repr(float(value))
    return format(Decimal(repr(float(value))), "f").removesuffix(".0")


def nanos_of(limit: float) -> int:
    """A configured maximum (its shortest decimal form) in billionths, rounded down."""
    return int(Decimal(repr(float(limit))).scaleb(SCALE))


def total_cents(quantity: pd.Series, nanos: pd.Series) -> pd.Series:
    """quantity * price in cents, rounded half up, exactly (Python integers if int64 could overflow)."""
    q = quantity.to_numpy(dtype="int64")
    n = nanos.to_numpy(dtype="int64")
    half, unit = NANOS // 200, NANOS // 100
    if len(q) and int(np.abs(q).max()) * int(np.abs(n).max()) >= 2**63 - half:
        products = [int(a) * int(b) for a, b in zip(q, n, strict=True)]
        cents = np.array([(p + half) // unit for p in products], dtype="int64")
    else:
        cents = (q * n + half) // unit
    return pd.Series(cents, index=quantity.index, dtype="int64")
