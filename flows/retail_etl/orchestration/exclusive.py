"""One run at a time per warehouse and day.

Two locks, for two kinds of neighbours: a Prefect global concurrency limit of one slot (runs
sharing a Prefect API wait in its queue, visibly in the UI), and a lease in the warehouse itself
(`io.lease`, for runs that share only the storage: two laptops, two temporary servers). A second
run of the same day (or a backfill covering it) waits for the first, up to a timeout, then fails
clearly; the Delta commit's own conflict check is the last guard. Limits are named from a hash
of the warehouse URL, so two warehouses never wait on each other.

>>> day_limit_name("s3://warehouse-prod", "2024-01-15")
'retail-etl-day-7558de3a106c-2024-01-15'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from ..errors import DayBusy
from ..io.lease import LeaseBusy, day_lease


def day_limit_name(warehouse: str, sale_date: str) -> str:
    digest = hashlib.sha256(warehouse.encode()).hexdigest()[:12]
    return f"retail-etl-day-{digest}-{sale_date}"


def _ensure_limit(name: str) -> None:
    """Create the one-slot limit unless it exists (a concurrent creation is fine)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass


@contextmanager
def exclusive_day(
    warehouse: str,
    options: Mapping[str, Any],
    sale_date: str,
    run_id: str,
    timeout_seconds: float,
    lease_seconds: float = 120.0,
) -> Iterator[None]:
    """Hold the day's slot and lease for the duration; DayBusy if another run holds either past the timeout."""
    from prefect.concurrency.sync import concurrency

    name = day_limit_name(warehouse, sale_date)
    _ensure_limit(name)
    busy = (
        f"{sale_date} in {warehouse} is being published by another run; waited {timeout_seconds:.0f} s "
        "(RETAIL_ETL_DAY_WAIT_SECONDS). Nothing was changed: run it again when that run has finished."
    )
    try:
        with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, lease_duration=lease_seconds, strict=True):
            with day_lease(warehouse, options, sale_date, run_id, timeout_seconds, timedelta(seconds=lease_seconds)):
                yield
    except TimeoutError:
        raise DayBusy(busy) from None
    except LeaseBusy as lease:
        raise DayBusy(f"{busy} (lease held by run {lease.holder})") from None
