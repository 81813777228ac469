"""Housekeeping of a warehouse: scratch of finished or killed runs, expired task results,
rejected files of replaced runs, and table files that left the tables long enough ago.

Nothing here touches what the current manifests and table versions reference, nor what a run in
flight needs: the table files under a day with a lease and the scratch of the lease's run stay,
whatever the retention, and a table retention below `RETENTION_FLOOR` is refused unless forced.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..contract.layout import (
    HOUSEKEEPING_MARKER,
    MANIFESTS,
    PREFECT_CACHE_KEYS,
    PREFECT_RESULTS,
    QUARANTINE_FILES,
    STAGING,
)
from ..errors import ConfigurationError
from .delta import TABLES, TableSpec, table_uri, vacuum
from .lease import lease_holders
from .storage import (
    exists,
    list_folder,
    location,
    read_bytes,
    read_json,
    remove_tree,
    storage_access,
    url_of,
    write_bytes,
)

#: The shortest table retention `vacuum` takes unforced: far above the longest run (a day of 10M
#: rows publishes in minutes, a 30-day backfill well within an hour, and a run waits at most
#: RETAIL_ETL_DAY_WAIT_SECONDS for another), so no file a run has written but not yet committed
#: is old enough to go.
RETENTION_FLOOR = timedelta(hours=24)


def _hours(duration: timedelta) -> str:
    return f"{duration.total_seconds() / 3600:g} h"


def check_retention(retention: timedelta, force: bool) -> None:
    """Refuse a table retention below the floor unless the operator forces it."""
    if retention < RETENTION_FLOOR and not force:
        raise ConfigurationError(
            f"a vacuum retention of {_hours(retention)} is below the floor of {_hours(RETENTION_FLOOR)}: files "
            "that a run in flight has written and not committed yet could go (days being published keep theirs "
            "anyway); give --force only if no run is in flight"
        )


@dataclass
class Sweep:
    """What one kind of housekeeping removed: the URLs, and the bytes they held."""

    paths: list[str] = field(default_factory=list)
    bytes: int = 0

    def add(self, url: str, size: int) -> None:
        self.paths.append(url)
        self.bytes += size


def _size(fs: Any, path: str) -> int:
    """Bytes under `path` (a file or a folder); 0 if it cannot be told."""
    try:
        return int(fs.du(path, total=True)) if fs.isdir(path) else int(fs.size(path))
    except (OSError, ValueError):
        return 0


def _modified(info: Mapping[str, Any]) -> datetime | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), tz=UTC)


def _newest(fs: Any, folder: str) -> datetime | None:
    """When anything under `folder` last changed (None if it holds no file)."""
    times = [_modified(info) for info in fs.find(folder, detail=True).values()]
    known = [moment for moment in times if moment is not None]
    return max(known) if known else None


def _old_folders(fs: Any, parent: str, older_than: timedelta, keep: set[str]) -> list[str]:
    """Sub-folders of `parent` whose newest file is older than `older_than` (and not in `keep`)."""
    cutoff = datetime.now(UTC) - older_than
    old = []
    for path in list_folder(fs, parent):
        if posixpath.basename(path.rstrip("/")) in keep:
            continue
        with storage_access("inspect", url_of(fs, path)):
            if not fs.isdir(path):
                continue
            newest = _newest(fs, path)
        if newest is None or newest < cutoff:
            old.append(path)
    return old


def remove_stale_scratch(
    warehouse: str, options: Mapping[str, Any] | None, older_than: timedelta, keep: str | None = None
) -> Sweep:
    """Remove `_staging/<run_id>/` of runs whose scratch has not changed for `older_than`, but for
    `keep` and the runs holding a day's lease (in flight, or dead and not taken over yet)."""
    root = location(warehouse, options)
    keeping = {keep} if keep else set()
    keeping |= set(lease_holders(warehouse, options).values())
    sweep = Sweep()
    for path in _old_folders(root.fs, root.join(STAGING), older_than, keeping):
        size = _size(root.fs, path)
        remove_tree(root.fs, path)
        sweep.add(root.url_of(path), size)
    return sweep


def remove_expired_results(warehouse: str, options: Mapping[str, Any] | None, older_than: timedelta) -> Sweep:
    """Remove Prefect result and cache-key files older than `older_than` (the cache expiration)."""
    root = location(warehouse, options)
    cutoff = datetime.now(UTC) - older_than
    sweep = Sweep()
    for folder in (PREFECT_RESULTS, PREFECT_CACHE_KEYS):
        path = root.join(folder)
        root.fs.invalidate_cache(path)
        if not exists(root.fs, path):
            continue
        with storage_access("remove expired results from", root.url_of(path)):
            for name, info in root.fs.find(path, detail=True).items():
                moment = _modified(info)
                if moment is not None and moment < cutoff:
                    root.fs.rm_file(name)
                    sweep.add(root.url_of(name), int(info.get("size") or 0))
    return sweep


def remove_replaced_rejected_files(warehouse: str, options: Mapping[str, Any] | None, older_than: timedelta) -> Sweep:
    """Remove rejected-file folders of runs that are no longer a day's published run."""
    root = location(warehouse, options)
    base = root.join(QUARANTINE_FILES)
    sweep = Sweep()
    for day_folder in list_folder(root.fs, base):
        day = posixpath.basename(day_folder.rstrip("/"))
        manifest = root.join(MANIFESTS, f"{day}.json")
        current = read_json(root.fs, manifest).get("run_id") if exists(root.fs, manifest) else None
        for path in _old_folders(root.fs, day_folder, older_than, {current} if current else set()):
            size = _size(root.fs, path)
            remove_tree(root.fs, path)
            sweep.add(root.url_of(path), size)
    return sweep


def vacuum_warehouse(
    warehouse: str,
    options: Mapping[str, Any] | None,
    retention: timedelta,
    scratch_retention: timedelta,
    results_retention: timedelta,
    force: bool = False,
) -> dict[str, Sweep]:
    """All of the above, and Delta vacuum of every table but the days with a lease (checked again
    before each table); returns what went, by kind."""
    check_retention(retention, force)
    report = {f"table {name}": _vacuum_table(warehouse, options, table, retention) for name, table in TABLES.items()}
    report["scratch"] = remove_stale_scratch(warehouse, options, scratch_retention)
    report["results"] = remove_expired_results(warehouse, options, results_retention)
    report["rejected files"] = remove_replaced_rejected_files(warehouse, options, retention)
    return report


def _vacuum_table(warehouse: str, options: Mapping[str, Any] | None, table: TableSpec, retention: timedelta) -> Sweep:
    """Delta vacuum of one table, measured: the files it would remove are sized first."""
    hours = retention.total_seconds() / 3600
    root = location(table_uri(warehouse, table), options)
    candidates = vacuum(warehouse, options, table, hours, dry_run=True)
    sizes = {path: _size(root.fs, root.join(path)) for path in candidates}
    sweep = Sweep()
    for path in vacuum(warehouse, options, table, hours, keep_days=lease_holders(warehouse, options)):
        sweep.add(root.url_of(root.join(path)), sizes.get(path, 0))
    return sweep


def summary(report: Mapping[str, Sweep]) -> str:
    """One line of what a housekeeping removed and the space it gave back.

    >>> summary({"scratch": Sweep(["a", "b"], 3 * 2**20), "results": Sweep()})
    '2 scratch (3.0 MiB), 0 results (0.0 MiB); 3.0 MiB freed'
    """
    parts = ", ".join(f"{len(sweep.paths)} {kind} ({sweep.bytes / 2**20:.1f} MiB)" for kind, sweep in report.items())
    return f"{parts}; {sum(sweep.bytes for sweep in report.values()) / 2**20:.1f} MiB freed"


def due(warehouse: str, options: Mapping[str, Any] | None, every: timedelta) -> bool:
    """True (and the time noted) if housekeeping of this warehouse last ran longer than `every` ago."""
    root = location(warehouse, options)
    marker = root.join(HOUSEKEEPING_MARKER)
    now = datetime.now(UTC)
    if exists(root.fs, marker):
        last = datetime.fromisoformat(read_bytes(root.fs, marker).decode().strip())
        if now - last < every:
            return False
    write_bytes(root.fs, marker, now.isoformat().encode())
    return True
