"""A lease on one day of a warehouse, kept in the warehouse itself.

Two runs that share no Prefect API (two laptops, two temporary servers) still share the
warehouse, so the day is claimed there, in ``_locks/sale_date=D.json``. Every change of it is
conditional on the version its writer last saw (`io.conditional`: `If-Match` on S3 and MinIO, a
digest check under a file lock on a local disk): the first claim is an exclusive create, and
renewing, taking over and releasing (a "released" record; the file stays) replace exactly the
version read, so of two runs racing for a day exactly one believes it holds it. A run that lost
its lease finds out at its next renewal and before it commits (`holds_lease`).

A holder renews every quarter of `stale_after`. A waiter judges it dead by its own clock only:
the record did not change for `stale_after` while the waiter watched it, so pods whose clocks
disagree never take a live run's day. (A waiter that gives up sooner than `stale_after` cannot
take over a dead run's lease; the next run of the day, waiting longer, does.)

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..contract.layout import LOCKS, day_partition
from ..errors import StorageAccessError
from .conditional import create_tagged, read_tagged, replace_if
from .storage import Location, list_folder, location, storage_access


class LeaseBusy(Exception):
    """Another run holds the day's lease (its run id is `holder`)."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by run {holder}")
        self.holder = holder


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _path(root: Location, sale_date: str) -> str:
    return root.join(LOCKS, f"{day_partition(sale_date)}.json")


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        holder = json.loads(data)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def _record(run_id: str, renewals: int = 0, acquired_at: str | None = None) -> bytes:
    return json.dumps({"run_id": run_id, "acquired_at": acquired_at or _now(), "renewals": renewals}).encode()


@dataclass
class _Held:
    """What the holder knows of its lease: the version it last wrote, and how often it renewed."""

    tag: str
    acquired_at: str
    renewals: int = 0
    lost: bool = False


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
    path = _path(root, sale_date)
    with storage_access("take the day's lease", root.url_of(path)):
        held = _acquire(root, path, run_id, wait_seconds, stale_after.total_seconds(), poll_seconds)
    stop = threading.Event()
    refresher = threading.Thread(
        target=_renew, args=(root, path, run_id, held, stop, stale_after.total_seconds() / 4), daemon=True
    )
    refresher.start()
    try:
        yield
    finally:
        stop.set()
        refresher.join()
        if not held.lost:  # released only if still ours: a conditional write of a "released" record
            released = json.dumps({"run_id": run_id, "released": True, "released_at": _now()}).encode()
            replace_if(root.fs, path, released, held.tag)


def _acquire(
    root: Location, path: str, run_id: str, wait_seconds: float, stale_seconds: float, poll_seconds: float
) -> _Held:
    """Claim the lease: create it, or replace a released one or one unchanged for `stale_seconds`
    of this waiter's own watching; LeaseBusy when `wait_seconds` pass first."""
    deadline = time.monotonic() + wait_seconds
    watched: tuple[str, float] | None = None  # the holder's version, and since when it is unchanged
    while True:
        acquired_at = _now()
        tag = create_tagged(root.fs, path, _record(run_id, acquired_at=acquired_at))
        if tag is not None:
            return _Held(tag, acquired_at)
        current = read_tagged(root.fs, path)
        if current is None:
            continue
        data, version = current
        holder = _parse(data) or {}
        now = time.monotonic()
        if watched is None or watched[0] != version:
            watched = (version, now)
        free = holder.get("released") is True or not holder.get("run_id")
        if free or now - watched[1] >= stale_seconds:
            tag = replace_if(root.fs, path, _record(run_id, acquired_at=acquired_at), version)
            if tag is not None:
                return _Held(tag, acquired_at)
            continue  # another waiter came first, or the holder renewed: look again
        if now >= deadline:
            raise LeaseBusy(str(holder.get("run_id")))
        time.sleep(min(poll_seconds, max(deadline - now, 0.05)))


def holds_lease(warehouse: str, options: Mapping[str, Any] | None, sale_date: str, run_id: str) -> bool:
    """Whether `run_id` still holds the day's lease (a run that lost it must not publish)."""
    root = location(warehouse, options)
    current = read_tagged(root.fs, _path(root, sale_date))
    holder = _parse(current[0]) if current else None
    return holder is not None and holder.get("run_id") == run_id and not holder.get("released")


def lease_holders(warehouse: str, options: Mapping[str, Any] | None) -> dict[str, str]:
    """Every day partition with a lease (``sale_date=D``) and the run holding it: what housekeeping
    must leave alone. A dead run's lease counts too until the next run of its day takes it over."""
    root = location(warehouse, options)
    holders = {}
    for path in list_folder(root.fs, root.join(LOCKS)):
        name = posixpath.basename(path)
        if not name.endswith(".json"):
            continue
        current = read_tagged(root.fs, path)
        holder = _parse(current[0]) if current else None
        if holder and holder.get("run_id") and not holder.get("released"):
            holders[name.removesuffix(".json")] = str(holder["run_id"])
    return holders


def _renew(root: Location, path: str, run_id: str, held: _Held, stop: threading.Event, every: float) -> None:
    """Renew the lease while the run works: a conditional write on the version last written, so a
    run whose lease was taken over learns it (and stops) instead of overwriting the new holder."""
    while not stop.wait(every):
        record = _record(run_id, held.renewals + 1, held.acquired_at)
        try:
            tag = replace_if(root.fs, path, record, held.tag)
        except (OSError, StorageAccessError):
            continue  # a failed renewal is retried at the next tick
        if tag is None:
            held.lost = True
            return
        held.tag, held.renewals = tag, held.renewals + 1
