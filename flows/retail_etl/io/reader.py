"""Reading published days back: the marts and the manifests, the way an analyst would.

>>> import pandas as pd
>>> marts = pd.DataFrame({"sale_date": ["2024-01-01", "2024-01-02"], "region": ["north", "north"],
...                       "revenue": [10.0, 30.0], "units": [1, 3], "transactions": [1, 2]})
>>> region_totals(marts)[["region", "revenue", "avg_ticket"]].values.tolist()
[['north', 40.0, 13.33]]
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd

from ..contract.layout import MANIFESTS
from ..contract.manifest import Manifest
from .delta import TABLES, open_table, table_uri
from .storage import list_folder, location, read_json, storage_access


def load_marts(warehouse: str, start: date, end: date, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """region_daily rows with start <= sale_date <= end, from the table's current version."""
    delta = open_table(warehouse, options, TABLES["marts"])
    if delta is None:
        return pd.DataFrame(columns=["sale_date", "region", "revenue", "units", "transactions"])
    with storage_access("read the Delta table", table_uri(warehouse, TABLES["marts"])):
        frame: pd.DataFrame = delta.to_pandas(
            filters=[("sale_date", ">=", start.isoformat()), ("sale_date", "<=", end.isoformat())]
        )
    return frame.sort_values(["sale_date", "region"], kind="stable").reset_index(drop=True)


def load_manifests(warehouse: str, start: date, end: date, options: Mapping[str, Any] | None = None) -> list[Manifest]:
    """Published manifests in the range, oldest first."""
    root = location(warehouse, options)
    folder = root.join(MANIFESTS)
    manifests = []
    for path in list_folder(root.fs, folder):
        name = path.rsplit("/", 1)[-1]
        day = name.removeprefix("sale_date=").removesuffix(".json")
        if name.endswith(".json") and start.isoformat() <= day <= end.isoformat():
            manifests.append(Manifest.model_validate(read_json(root.fs, path)))
    return manifests


def region_totals(marts: pd.DataFrame) -> pd.DataFrame:
    """Revenue, units, transactions and average ticket per region over the whole range."""
    totals = marts.groupby("region", as_index=False)[["revenue", "units", "transactions"]].sum()
    totals["revenue"] = totals["revenue"].round(2)
    totals["avg_ticket"] = (totals["revenue"] / totals["transactions"].where(totals["transactions"] > 0)).round(2)
    return totals.sort_values("revenue", ascending=False, kind="stable").reset_index(drop=True)
