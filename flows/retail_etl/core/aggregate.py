"""Per-region daily figures, from curated rows.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 4], "total": [20.0, 600.0],
...                      "ticket_size": ["small", "large"]})
>>> region_summary("north", rows).avg_ticket
310.0
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class RegionTotals:
    """Additive figures of some of a region's rows (whole cents, so any split adds up exactly):
    a transform-bucket task computes them for its rows, the flow adds the buckets' up.

    >>> rows = pd.DataFrame({"quantity": [1, 4], "total": [0.1, 600.0], "ticket_size": ["small", "large"]})
    >>> half = RegionTotals.of("north", rows.iloc[:1]) + RegionTotals.of("north", rows.iloc[1:])
    >>> half == RegionTotals.of("north", rows), half.summary().revenue
    (True, 600.1)
    """

    region: str
    cents: int = 0
    units: int = 0
    transactions: int = 0
    small: int = 0
    medium: int = 0
    large: int = 0

    @classmethod
    def of(cls, region: str, rows: pd.DataFrame) -> RegionTotals:
        """The totals of curated rows (quantity, total, ticket_size) of one region."""
        if not len(rows):
            return cls(region)
        sizes = rows["ticket_size"].astype("str").value_counts()
        return cls(
            region,
            cents=int((rows["total"] * 100).round().sum()),
            units=int(rows["quantity"].sum()),
            transactions=len(rows),
            **{size: int(sizes.get(size, 0)) for size in TICKET_SIZES},
        )

    def __add__(self, other: RegionTotals) -> RegionTotals:
        if other.region != self.region:
            raise ValueError(f"cannot add the totals of {other.region!r} to those of {self.region!r}")
        return RegionTotals(
            self.region,
            *(getattr(self, name) + getattr(other, name) for name in ("cents", "units", "transactions", *TICKET_SIZES)),
        )

    def summary(self) -> RegionSummary:
        """The mart row of these totals."""
        revenue = self.cents / 100
        return RegionSummary(
            region=self.region,
            revenue=revenue,
            units=self.units,
            transactions=self.transactions,
            avg_ticket=round(revenue / self.transactions, 2) if self.transactions else 0.0,
            **{f"{size}_tickets": getattr(self, size) for size in TICKET_SIZES},
        )


def region_summary(region: str, rows: pd.DataFrame) -> RegionSummary:
    """Revenue, units, transactions, average ticket and counts per ticket size of one region."""
    return RegionTotals.of(region, rows).summary()


def region_summaries(totals: Iterable[RegionTotals]) -> list[RegionSummary]:
    """One mart row per region, sorted by region, from the totals of any parts of the day.

    >>> north = RegionTotals("north", cents=10, units=1, transactions=1, small=1)
    >>> [s.revenue for s in region_summaries([north, RegionTotals("east"), north])]
    [0.0, 0.2]
    """
    combined: dict[str, RegionTotals] = {}
    for part in totals:
        combined[part.region] = combined[part.region] + part if part.region in combined else part
    return [combined[region].summary() for region in sorted(combined)]


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
