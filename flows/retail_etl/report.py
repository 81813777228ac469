"""Reading the published marts back, the way an analyst would.

>>> import pandas as pd
>>> marts = pd.DataFrame({"sale_date": ["2024-01-01", "2024-01-02"], "region": ["north", "north"],
...                       "revenue": [10.0, 30.0], "units": [1, 3], "transactions": [1, 2]})
>>> region_totals(marts)[["region", "revenue", "avg_ticket"]].values.tolist()
[['north', 40.0, 13.33]]
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from .contract import MANIFESTS, MARTS
from .storage import location, read_json


def load_marts(warehouse: str, start: date, end: date) -> pd.DataFrame:
    """region_daily rows with start <= sale_date <= end, as published."""
    root = location(warehouse)
    path = root.join(MARTS)
    root.fs.invalidate_cache(path)
    if not root.fs.exists(path):
        return pd.DataFrame(columns=["sale_date", "region", "revenue", "units", "transactions"])
    partitioning = ds.partitioning(pa.schema([("sale_date", pa.string())]), flavor="hive")
    dataset = ds.dataset(path, filesystem=root.fs, format="parquet", partitioning=partitioning)
    table = dataset.to_table(
        filter=(ds.field("sale_date") >= start.isoformat()) & (ds.field("sale_date") <= end.isoformat())
    )
    return table.to_pandas().sort_values(["sale_date", "region"], kind="stable").reset_index(drop=True)


def load_manifests(warehouse: str, start: date, end: date) -> list[dict]:
    """Published manifests in the range, oldest first."""
    root = location(warehouse)
    folder = root.join(MANIFESTS)
    root.fs.invalidate_cache(folder)
    if not root.fs.exists(folder):
        return []
    manifests = []
    for path in sorted(root.fs.ls(folder, detail=False)):
        name = path.rsplit("/", 1)[-1]
        day = name.removeprefix("sale_date=").removesuffix(".json")
        if name.endswith(".json") and start.isoformat() <= day <= end.isoformat():
            manifests.append(read_json(root.fs, path))
    return manifests


def region_totals(marts: pd.DataFrame) -> pd.DataFrame:
    """Revenue, units, transactions and average ticket per region over the whole range."""
    totals = marts.groupby("region", as_index=False)[["revenue", "units", "transactions"]].sum()
    totals["revenue"] = totals["revenue"].round(2)
    totals["avg_ticket"] = (totals["revenue"] / totals["transactions"].where(totals["transactions"] > 0)).round(2)
    return totals.sort_values("revenue", ascending=False, kind="stable").reset_index(drop=True)


def plot_revenue(marts: pd.DataFrame, path: str) -> None:
    """A PNG of daily revenue per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import StrMethodFormatter

    pivot = marts.pivot_table(index="sale_date", columns="region", values="revenue", aggfunc="sum").sort_index()
    figure, axes = plt.subplots(figsize=(10, 5))
    if len(pivot) == 1:  # one day: compare the regions side by side
        pivot.iloc[0].sort_values(ascending=False).plot.bar(ax=axes, color="tab:blue")
        axes.set_title(f"Revenue by region on {pivot.index[0]}")
        axes.set_xlabel("region")
    else:
        pivot.index = pd.to_datetime(pivot.index)  # a date axis spaces and labels the days
        pivot.plot(ax=axes, marker="o")
        axes.set_title("Daily revenue by region")
        axes.set_xlabel("sale date")
        figure.autofmt_xdate()
    axes.set_ylabel("revenue")
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
