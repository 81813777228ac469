"""Per-region daily figures, from curated rows.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 4], "total": [20.0, 600.0],
...                      "ticket_size": ["small", "large"]})
>>> region_summary("north", rows).avg_ticket
310.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..contract.columns import MART_COLUMNS, TICKET_SIZES


@dataclass(frozen=True)
class RegionSummary:
    """One row of the region_daily mart."""

    region: str
    revenue: float
    units: int
    transactions: int
    avg_ticket: float
    small_tickets: int
    medium_tickets: int
    large_tickets: int


def region_summary(region: str, rows: pd.DataFrame) -> RegionSummary:
    """Revenue, units, transactions, average ticket and counts per ticket size of one region."""
    transactions = len(rows)
    # Totals are whole cents: summing them as integers keeps a million rows' revenue exact.
    cents = np.rint(rows["total"].to_numpy(dtype="float64") * 100).astype("int64")
    revenue = int(cents.sum()) / 100
    sizes = rows["ticket_size"].astype("str").value_counts() if transactions else pd.Series(dtype="int64")
    counts = {f"{size}_tickets": int(sizes.get(size, 0)) for size in TICKET_SIZES}
    return RegionSummary(
        region=region,
        revenue=revenue,
        units=int(rows["quantity"].sum()) if transactions else 0,
        transactions=transactions,
        avg_ticket=round(revenue / transactions, 2) if transactions else 0.0,
        **counts,
    )


def mart_frame(summaries: list[RegionSummary]) -> pd.DataFrame:
    """The region_daily mart for one day, one row per region, sorted by region."""
    frame = pd.DataFrame([asdict(summary) for summary in summaries], columns=list(MART_COLUMNS))
    return (
        frame.sort_values("region", kind="stable")
        .reset_index(drop=True)
        .astype(
            {"revenue": "float64", "units": "int64", "transactions": "int64", "avg_ticket": "float64"}
            | {f"{size}_tickets": "int64" for size in TICKET_SIZES}
        )
    )
