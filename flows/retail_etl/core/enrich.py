"""Enrichment of clean rows: line total and ticket size.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 2, 5], "unit_price": [99.99, 50.0, 100.0]})
>>> enriched = enrich(rows)
>>> enriched["total"].tolist(), enriched["ticket_size"].astype(str).tolist()
([99.99, 100.0, 500.0], ['small', 'medium', 'large'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contract.columns import TICKET_BOUNDS, TICKET_SIZES


def ticket_sizes(totals: pd.Series) -> pd.Categorical[str]:
    """small (< 100), medium (100 to < 500), large (>= 500) by line total."""
    codes = np.searchsorted(np.asarray(TICKET_BOUNDS), totals.to_numpy(dtype="float64"), side="right")
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(TICKET_SIZES)))


def enrich(clean: pd.DataFrame) -> pd.DataFrame:
    """Add `total` (quantity * unit_price, rounded to cents) and `ticket_size`."""
    enriched = clean.copy()
    enriched["total"] = (clean["quantity"].astype("float64") * clean["unit_price"]).round(2)
    enriched["ticket_size"] = ticket_sizes(enriched["total"])
    return enriched
