"""Enrichment of clean rows: line total and ticket size.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 2, 5, 3], "unit_price": [99.99, 50.0, 100.0, 0.335],
...                      "unit_price_nanos": [99_990_000_000, 50_000_000_000, 100_000_000_000, 335_000_000]})
>>> enriched = enrich(rows)
>>> enriched["total"].tolist(), enriched["ticket_size"].astype(str).tolist()
([99.99, 100.0, 500.0, 1.01], ['small', 'medium', 'large', 'small'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contract.columns import TICKET_BOUNDS, TICKET_SIZES
from .numbers import float_text, price_nanos, total_cents


def ticket_sizes(cents: pd.Series) -> pd.Categorical[str]:
    """small (< 100), medium (100 to < 500), large (>= 500) by line total, compared in whole cents."""
    bounds = np.asarray([round(bound * 100) for bound in TICKET_BOUNDS], dtype="int64")
    codes = np.searchsorted(bounds, cents.to_numpy(dtype="int64"), side="right")
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(TICKET_SIZES)))


def enrich(clean: pd.DataFrame) -> pd.DataFrame:
    """Add `total` (quantity * unit_price exactly, rounded half up to cents) and `ticket_size`.

    The exact price (`unit_price_nanos`, from `core.numbers`) is used, not the float: 3 x 0.335
    is 1.01, where float arithmetic says 1.00. Rows without it are priced at their float's
    shortest decimal."""
    enriched = clean.copy()
    if "unit_price_nanos" in clean:
        nanos = clean["unit_price_nanos"]
    else:
        nanos = price_nanos(pd.Series([float_text(price) for price in clean["unit_price"]], dtype="str"))
    cents = total_cents(clean["quantity"], nanos)
    enriched["total"] = cents / 100
    enriched["ticket_size"] = ticket_sizes(cents)
    return enriched.drop(columns=["unit_price_nanos"], errors="ignore")
