"""Where things live: the warehouse layout and its hive partitions, relative to its root.

>>> partition_value("north/east"), day_partition("2024-01-15")
('north%2Feast', 'sale_date=2024-01-15')
"""

from __future__ import annotations

from urllib.parse import quote

LANDING_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")

# Layout of the warehouse, relative to its root.
CURATED = "curated/sales"
QUARANTINE_ROWS = "quarantine/sales"
QUARANTINE_FILES = "quarantine/files"
MARTS = "marts/region_daily"
MANIFESTS = "manifests"
#: Under MANIFESTS: every run's manifest, kept for rollback (`_runs/sale_date=D/<run_id>.json`).
RUN_MANIFESTS = "_runs"
STAGING = "_staging"
#: Leases of days being published (`_locks/sale_date=D.json`).
LOCKS = "_locks"
#: Under a run's staging prefix: rows that passed the field checks, bucketed by transaction_id.
CANDIDATES = "candidates"
PREFECT_RESULTS = "_prefect/results"
#: When housekeeping (vacuum) of the warehouse last ran, so the nightly flow runs it once a day.
HOUSEKEEPING_MARKER = "_housekeeping/last-run"
PREFECT_CACHE_KEYS = "_prefect/cache-keys"

#: Datasets replaced as a whole partition when a day is (re)published.
DAY_DATASETS: tuple[str, ...] = (CURATED, QUARANTINE_ROWS, QUARANTINE_FILES, MARTS)


def partition_value(value: str) -> str:
    """Encode a value for a hive path segment (what pyarrow and DuckDB decode)."""
    return quote(str(value), safe="")


def day_partition(sale_date: str) -> str:
    return f"sale_date={sale_date}"


def manifest_name(sale_date: str) -> str:
    return f"sale_date={sale_date}.json"
