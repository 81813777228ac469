"""A lease on one day of a warehouse, kept in the warehouse itself.

Two runs that share no Prefect API (two laptops, two temporary servers) still share the
warehouse, so the day is claimed there: ``_locks/sale_date=D.json`` is created with an exclusive
create (a conditional put on S3 and MinIO, ``O_EXCL`` on a local disk), refreshed while the run
works, and removed when it ends. A lease not refreshed for `stale_after` belongs to a run that
died (kill -9, a lost node) and is taken over.

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> with day_lease(root, None, "2024-01-15", "run-a", wait_seconds=0):
...     try:
...         with day_lease(root, None, "2024-01-15", "run-b", wait_seconds=0):
...             pass
...     except LeaseBusy as busy:
...         print(busy.holder)
run-a
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from ..contract.layout import LOCKS, day_partition
from .storage import Location, create_exclusive, list_folder, location, storage_access


class LeaseBusy(Exception):
    """Another run holds the day's lease (its run id is `holder`)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by run {holder}")
        self.holder = holder


def _now() -> datetime:
    return datetime.now(UTC)


def _create(root: Location, path: str, data: bytes) -> bool:
    """Create `path` only if it does not exist; False if it does."""
    return create_exclusive(root.fs, path, data)


def _read(root: Location, path: str) -> dict[str, Any] | None:
    try:
        holder: dict[str, Any] = json.loads(root.fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None
    return holder


@contextmanager
def day_lease(
    warehouse: str,
    options: Mapping[str, Any] | None,
    sale_date: str,
    run_id: str,
    wait_seconds: float,
    stale_after: timedelta = timedelta(minutes=2),
    poll_seconds: float = 2.0,
) -> Iterator[None]:
    """Hold the day's lease for the duration; LeaseBusy if another run holds it past `wait_seconds`."""
    root = location(warehouse, options)
    path = root.join(LOCKS, f"{day_partition(sale_date)}.json")
    with storage_access("take the day's lease", root.url_of(path)):
        _acquire(root, path, run_id, wait_seconds, stale_after, poll_seconds)
    stop = threading.Event()
    refresher = threading.Thread(
        target=_refresh, args=(root, path, run_id, stop, stale_after.total_seconds() / 4), daemon=True
    )
    refresher.start()
    try:
        yield
    finally:
        stop.set()
        refresher.join()
        with storage_access("release the day's lease", root.url_of(path)):
            holder = _read(root, path)
            if holder is not None and holder.get("run_id") == run_id:
                root.fs.rm_file(path)


def _acquire(
    root: Location, path: str, run_id: str, wait_seconds: float, stale_after: timedelta, poll_seconds: float
) -> None:
    """Create the lease, waiting for a live holder up to `wait_seconds` and taking over a dead one's."""
    deadline = time.monotonic() + wait_seconds
    while not _create(root, path, _record(run_id)):
        holder = _read(root, path)
        if holder is None:
            continue  # released meanwhile (or half-written): try again
        if _now() - datetime.fromisoformat(holder["refreshed_at"]) > stale_after:
            if _read(root, path) == holder:  # still that dead run's lease: take it over
                root.fs.rm_file(path)
            continue
        if time.monotonic() >= deadline:
            raise LeaseBusy(str(holder.get("run_id")))
        time.sleep(poll_seconds)


def holds_lease(warehouse: str, options: Mapping[str, Any] | None, sale_date: str, run_id: str) -> bool:
    """Whether `run_id` still holds the day's lease (a run that lost it must not publish)."""
    root = location(warehouse, options)
    path = root.join(LOCKS, f"{day_partition(sale_date)}.json")
    with storage_access("read the day's lease", root.url_of(path)):
        holder = _read(root, path)
    return holder is not None and holder.get("run_id") == run_id


def lease_holders(warehouse: str, options: Mapping[str, Any] | None) -> dict[str, str]:
    """Every day partition with a lease (``sale_date=D``) and the run holding it: what housekeeping
    must leave alone. A dead run's lease counts too until the next run of its day takes it over."""
    root = location(warehouse, options)
    holders = {}
    for path in list_folder(root.fs, root.join(LOCKS)):
        name = posixpath.basename(path)
        if name.endswith(".json"):
            with storage_access("read the day's lease", root.url_of(path)):
                holder = _read(root, path)
            holders[name.removesuffix(".json")] = str((holder or {}).get("run_id", ""))
    return holders


def _record(run_id: str) -> bytes:
    now = _now().isoformat()
    return json.dumps({"run_id": run_id, "acquired_at": now, "refreshed_at": now}).encode()


def _refresh(root: Location, path: str, run_id: str, stop: threading.Event, every: float) -> None:
    """Keep the lease fresh while the run works (a failed refresh is retried at the next tick)."""
    while not stop.wait(every):
        holder = _read(root, path)
        if holder is None or holder.get("run_id") != run_id:
            return  # taken over: the Delta commit guard will refuse this run's commits
        holder["refreshed_at"] = _now().isoformat()
        try:
            root.fs.pipe_file(path, json.dumps(holder).encode())
        except OSError:
            continue
