"""Per-region daily figures, from curated rows.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 4], "total": [20.0, 600.0],
...                      "ticket_size": ["small", "large"]})
>>> region_summary("north", rows).avg_ticket
310.0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

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
    return region_summary_of_parts(region, [rows])


def region_summary_of_parts(region: str, parts: Iterable[pd.DataFrame]) -> RegionSummary:
    """`region_summary` of the rows of every part, taking one part at a time (a data file), so a
    region needs the memory of its largest file, not of all its rows. Revenue adds whole cents
    (totals are rounded to cents), so the sum does not depend on how the rows are split.

    >>> one = pd.DataFrame({"quantity": [1], "total": [0.1], "ticket_size": ["small"]})
    >>> region_summary_of_parts("north", [one, one, one]).revenue
    0.3
    """
    cents = units = transactions = 0
    sizes: Counter[str] = Counter()
    for rows in parts:
        if not len(rows):
            continue
        transactions += len(rows)
        units += int(rows["quantity"].sum())
        cents += int((rows["total"] * 100).round().sum())
        sizes.update(
            {str(size): int(count) for size, count in rows["ticket_size"].astype("str").value_counts().items()}
        )
    revenue = cents / 100
    return RegionSummary(
        region=region,
        revenue=revenue,
        units=units,
        transactions=transactions,
        avg_ticket=round(revenue / transactions, 2) if transactions else 0.0,
        **{f"{size}_tickets": sizes[size] for size in TICKET_SIZES},
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
