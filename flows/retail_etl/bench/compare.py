"""What `retail-etl bench` checks and reports: the figures each contender published, whether
they agree, and the timing statistics.

A benchmark that compares different work is wrong, so every run's outputs are read back from
its warehouse (not taken from what it says it did) and compared with the pipeline's: rows
published (overall and per region), quarantine rows per reason, and per-region revenue to the
cent, units and transactions.

>>> a = {"rows_published": 2, "quarantine_reasons": {"bad_price": 1},
...      "regions": {"north": {"revenue": 10.0, "units": 3, "transactions": 2, "curated_rows": 2}}}
>>> b = {**a, "regions": {"north": {**a["regions"]["north"], "revenue": 10.01}}}
>>> compare_figures(a, b)
['region north: revenue 10.00 vs 10.01']
"""

from __future__ import annotations

import statistics
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq

from ..contract.layout import CURATED, MARTS, QUARANTINE_ROWS, day_partition


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(("_", "."))) if folder.is_dir() else []


def warehouse_figures(warehouse: str | Path, sale_date: str) -> dict:
    """The day's published figures, read back from the curated, quarantine and mart Parquet."""
    root, day = Path(warehouse), day_partition(sale_date)
    regions: dict[str, dict] = {}
    for folder in sorted((root / CURATED / day).glob("region=*")):
        region = unquote(folder.name.split("=", 1)[1])
        rows = sum(pq.ParquetFile(path).metadata.num_rows for path in _parquet_files(folder))
        regions.setdefault(region, {})["curated_rows"] = rows
    for path in _parquet_files(root / MARTS / day):
        for row in pq.read_table(path, columns=["region", "revenue", "units", "transactions"]).to_pylist():
            regions.setdefault(row["region"], {}).update(
                revenue=float(row["revenue"]), units=int(row["units"]), transactions=int(row["transactions"])
            )
    reasons: dict[str, int] = {}
    for path in _parquet_files(root / QUARANTINE_ROWS / day):
        for reason in pq.read_table(path, columns=["reason"]).column("reason").to_pylist():
            reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "rows_published": sum(r.get("curated_rows", 0) for r in regions.values()),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "regions": dict(sorted(regions.items())),
    }


def _cents(value: float | None) -> int | None:
    return None if value is None else round(value * 100)


def compare_figures(expected: dict, actual: dict) -> list[str]:
    """Human-readable differences between two contenders' figures (empty when they agree)."""
    differences = []
    if expected["rows_published"] != actual["rows_published"]:
        differences.append(f"rows published {expected['rows_published']} vs {actual['rows_published']}")
    for reason in sorted(set(expected["quarantine_reasons"]) | set(actual["quarantine_reasons"])):
        a, b = expected["quarantine_reasons"].get(reason, 0), actual["quarantine_reasons"].get(reason, 0)
        if a != b:
            differences.append(f"quarantine {reason}: {a} vs {b}")
    for region in sorted(set(expected["regions"]) | set(actual["regions"])):
        a, b = expected["regions"].get(region), actual["regions"].get(region)
        if a is None or b is None:
            differences.append(
                f"region {region}: {'missing' if a is None else 'present'} vs {'missing' if b is None else 'present'}"
            )
            continue
        if _cents(a.get("revenue")) != _cents(b.get("revenue")):
            differences.append(f"region {region}: revenue {a.get('revenue'):.2f} vs {b.get('revenue'):.2f}")
        for key in ("units", "transactions", "curated_rows"):
            if a.get(key) != b.get(key):
                differences.append(f"region {region}: {key} {a.get(key)} vs {b.get(key)}")
    return differences


def timing_summary(work_s: list[float], rows: int) -> dict:
    """Median, spread and throughput of one contender's timed runs.

    >>> timing_summary([2.0, 4.0, 3.0], rows=300)
    {'runs': 3, 'median_s': 3.0, 'min_s': 2.0, 'max_s': 4.0, 'rows_per_s': 100.0}
    """
    median = statistics.median(work_s)
    return {
        "runs": len(work_s),
        "median_s": median,
        "min_s": min(work_s),
        "max_s": max(work_s),
        "rows_per_s": rows / median if median > 0 else 0.0,
    }
