"""One run at a time per warehouse and day.

The day is claimed in the warehouse itself (`io.lease`: an exclusive create, a conditional put on
S3 and MinIO), not in a Prefect concurrency limit: two runs of a day may share only the storage
(two laptops, two temporary Prefect servers, two names of one folder), and a Prefect slot held by
a killed run stays taken until the server's lease expiry (never, on an ephemeral server), while a
lease nobody renews is taken over after `lease_seconds`. A second run of the same day (or a
backfill covering it) waits for the first, up to a timeout, then fails clearly; the Delta
commits' fence (`io.publish`) is the last guard.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from ..errors import DayBusy
from ..io.lease import LeaseBusy, day_lease


@contextmanager
def exclusive_day(
    warehouse: str,
    options: Mapping[str, Any],
    sale_date: str,
    run_id: str,
    timeout_seconds: float,
    lease_seconds: float = 120.0,
) -> Iterator[None]:
    """Hold the day's lease for the duration; DayBusy if a live run holds it past the timeout."""
    try:
        with day_lease(warehouse, options, sale_date, run_id, timeout_seconds, timedelta(seconds=lease_seconds)):
            yield
    except LeaseBusy as lease:
        raise DayBusy(
            f"{sale_date} in {warehouse} is being published by run {lease.holder}; waited {timeout_seconds:.0f} s "
            "(RETAIL_ETL_DAY_WAIT_SECONDS). Nothing was changed: run it again when that run has finished."
        ) from None
