"""Per-region daily figures, from curated rows.

>>> import pandas as pd
>>> rows = pd.DataFrame({"quantity": [1, 4], "total": [20.0, 600.0],
...                      "ticket_size": ["small", "large"]})
>>> region_summary("north", rows)["avg_ticket"]
310.0
"""

from __future__ import annotations

import pandas as pd

from .contract import MART_COLUMNS, TICKET_SIZES


def region_summary(region: str, rows: pd.DataFrame) -> dict:
    """One mart row: revenue, units, transactions, average ticket and counts per ticket size."""
    transactions = int(len(rows))
    revenue = round(float(rows["total"].sum()), 2) if transactions else 0.0
    sizes = rows["ticket_size"].astype("str").value_counts() if transactions else pd.Series(dtype="int64")
    summary = {
        "region": region,
        "revenue": revenue,
        "units": int(rows["quantity"].sum()) if transactions else 0,
        "transactions": transactions,
        "avg_ticket": round(revenue / transactions, 2) if transactions else 0.0,
    }
    for size in TICKET_SIZES:
        summary[f"{size}_tickets"] = int(sizes.get(size, 0))
    return summary


def mart_frame(summaries: list[dict]) -> pd.DataFrame:
    """The region_daily mart for one day, one row per region, sorted by region."""
    frame = pd.DataFrame(summaries, columns=list(MART_COLUMNS))
    return frame.sort_values("region", kind="stable").reset_index(drop=True).astype(
        {"revenue": "float64", "units": "int64", "transactions": "int64", "avg_ticket": "float64"}
        | {f"{size}_tickets": "int64" for size in TICKET_SIZES}
    )
