"""Publication of one day: data files into the Delta tables, then one commit per table.

A run writes its curated, quarantine and mart data files straight into the tables' folders
under names only this run uses (``<run_id>-<part>.parquet``); readers of the tables do not see
them until `commit` makes one Delta transaction per table that replaces the day. The manifest
is written last and names each table's committed version. Scratch data (the transaction_id
buckets of the duplicate check) lives under ``_staging/<run_id>/`` and is removed when the run
ends. A run deletes nothing published: replaced files stay readable by time travel until vacuum.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..contract.columns import LANDING_COLUMNS
from ..contract.layout import (
    CANDIDATES,
    MANIFESTS,
    QUARANTINE_FILES,
    RUN_MANIFESTS,
    STAGING,
    day_partition,
    manifest_name,
)
from ..contract.manifest import Manifest
from ..core.checks import PARSED_COLUMNS
from ..core.planning import bucket_order, id_hashes
from ..errors import NothingPublishedError, PublishConflict
from .delta import (
    TABLES,
    DataFile,
    commit_day,
    day_history,
    day_stamp,
    ensure_table,
    restore_day,
    revert_day,
    write_data_file,
)
from .lease import holds_lease
from .storage import (
    Location,
    exists,
    location,
    normalize,
    read_arrow_dir,
    read_json,
    remove_tree,
    write_arrow,
    write_bytes,
)

#: Tables are committed in this order; the manifest is written after the last one.
COMMIT_ORDER: tuple[str, ...] = ("curated", "quarantine", "marts")

#: Scratch rows of the duplicate check, in one schema whatever a batch held: pandas picks a
#: Categorical's code width from its number of categories (int8 up to 127 files, then int16),
#: and files of different widths could not be read back together.
CANDIDATE_SCHEMA = pa.schema(
    [pa.field(column, pa.large_string()) for column in LANDING_COLUMNS]
    + [
        pa.field("source_line", pa.int64()),
        pa.field("source_file", pa.dictionary(pa.int32(), pa.large_string())),
        *(pa.field(column, pa.float64() if column == "unit_price_value" else pa.int64()) for column in PARSED_COLUMNS),
        pa.field("id_hash", pa.int64()),
    ]
)


def write_manifest(root: Location, manifest: Manifest) -> Manifest:
    """The day's manifest (one object, replaced whole), and a copy kept per run for rollback;
    returns it with its URL."""
    data = manifest.to_json_bytes()
    write_bytes(root.fs, run_manifest_path(root, manifest.sale_date, manifest.run_id), data)
    path = root.join(MANIFESTS, manifest_name(manifest.sale_date))
    write_bytes(root.fs, path, data)
    return manifest.model_copy(update={"manifest_url": root.url_of(path)})


def candidate_table(table: pa.Table) -> pa.Table:
    """Candidate rows (`split_field_checks`) as `CANDIDATE_SCHEMA` (extra columns dropped)."""
    return table.select(CANDIDATE_SCHEMA.names).replace_schema_metadata(None).cast(CANDIDATE_SCHEMA)


def run_manifest_path(root: Location, sale_date: str, run_id: str) -> str:
    return root.join(MANIFESTS, RUN_MANIFESTS, day_partition(sale_date), f"{run_id}.json")


class DayPublisher(Protocol):
    """What the pipeline needs of a publisher: somewhere to put a run's outputs where readers do
    not see them, then one commit of the day. `DayPublication` (Delta Lake) is the one in use."""

    def write_curated(self, enriched: pd.DataFrame, part: str) -> list[DataFile]: ...
    def write_quarantine(self, quarantine: pd.DataFrame, part: str) -> list[DataFile]: ...
    def write_mart(self, mart: pd.DataFrame) -> list[DataFile]: ...
    def write_rejected_file(self, name: str, data: bytes) -> str: ...
    def commit(
        self,
        files: Mapping[str, Sequence[DataFile]],
        manifest: Manifest,
        on_commit: Callable[[str, int], None] | None = None,
    ) -> Manifest: ...
    def cleanup(self) -> None: ...


class DayPublication:
    """The outputs of one run for one sale date, invisible to readers until `commit`."""

    def __init__(
        self, warehouse: str, options: Mapping[str, Any] | None, sale_date: str, run_id: str, leased: bool = False
    ) -> None:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ValueError(f"run_id must be a plain path segment, got {run_id!r}")
        self.warehouse = normalize(warehouse)
        self.options = dict(options or {})
        self.sale_date = sale_date
        self.run_id = run_id
        self.leased = leased  # the run holds the day's lease (io.lease) and must still hold it to commit
        self.root = location(self.warehouse, self.options)
        self.scratch = self.root.join(STAGING, run_id)

    # -- data files (written where the task runs) --------------------------------------------

    def write_curated(self, enriched: pd.DataFrame, part: str) -> list[DataFile]:
        """One data file per region in `enriched`."""
        return [
            write_data_file(
                self.warehouse,
                self.options,
                TABLES["curated"],
                {"sale_date": self.sale_date, "region": str(region)},
                f"{self.run_id}-{part}",
                rows,
            )
            for region, rows in enriched.groupby("region", sort=True, observed=True)
        ]

    def write_quarantine(self, quarantine: pd.DataFrame, part: str) -> list[DataFile]:
        if not len(quarantine):
            return []
        return [
            write_data_file(
                self.warehouse,
                self.options,
                TABLES["quarantine"],
                {"sale_date": self.sale_date},
                f"{self.run_id}-{part}",
                quarantine,
            )
        ]

    def write_mart(self, mart: pd.DataFrame) -> list[DataFile]:
        if not len(mart):
            return []
        return [
            write_data_file(
                self.warehouse, self.options, TABLES["marts"], {"sale_date": self.sale_date}, self.run_id, mart
            )
        ]

    def write_rejected_file(self, name: str, data: bytes) -> str:
        """Keep an unreadable landing file byte for byte (this run's folder); returns its URL."""
        path = self.root.join(QUARANTINE_FILES, day_partition(self.sale_date), self.run_id, name)
        write_bytes(self.root.fs, path, data)
        return self.root.url_of(path)

    def file_url(self, table: str, data_file: DataFile) -> str:
        """Where a data file of `table` lives (for a task that reads it back)."""
        return self.root.url_of(self.root.join(TABLES[table].path, data_file.path))

    # -- scratch: the day-wide duplicate check ----------------------------------------------

    def candidate_dir(self, bucket: int) -> str:
        return posixpath.join(self.scratch, CANDIDATES, f"bucket={bucket:04d}")

    def write_candidates(self, rows: pd.DataFrame | pa.Table, file_index: int, buckets: int) -> None:
        """Spread rows over `buckets` by transaction_id, so each bucket can be de-duplicated alone."""
        if not len(rows):
            return
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        hashes = id_hashes(table.column("transaction_id"))
        order, bounds = bucket_order(hashes, buckets)
        sale_date = table.column("sale_date")
        table = table.set_column(
            table.schema.get_field_index("sale_date"),
            "sale_date",
            # After the field checks sale_date is the run date; keep only spellings that differ (" 2024-01-15").
            pc.if_else(pc.equal(sale_date, self.sale_date), pa.scalar(None, sale_date.type), sale_date),
        )
        table = table.append_column("id_hash", pa.array(hashes.view("int64")))  # the duplicate check's prefilter
        table = candidate_table(table).take(order)
        for bucket in range(buckets):
            if bounds[bucket + 1] > bounds[bucket]:
                part = table.slice(bounds[bucket], bounds[bucket + 1] - bounds[bucket])
                write_arrow(
                    self.root.fs, posixpath.join(self.candidate_dir(bucket), f"file-{file_index:06d}.arrow"), part
                )

    def read_candidates(self, bucket: int) -> pd.DataFrame:
        """A bucket's rows from every file, in file order then line order (first seen first)."""
        directory = self.candidate_dir(bucket)
        table = read_arrow_dir(self.root.fs, directory) if exists(self.root.fs, directory) else None
        if table is None:
            return pd.DataFrame()
        candidates = table.to_pandas()
        candidates["sale_date"] = candidates["sale_date"].fillna(self.sale_date)
        candidates["raw_line"] = pd.Series(pd.NA, index=candidates.index, dtype="str")  # none: they parsed
        return candidates

    # -- the commit ---------------------------------------------------------------------------

    def commit(
        self,
        files: Mapping[str, Sequence[DataFile]],
        manifest: Manifest,
        on_commit: Callable[[str, int], None] | None = None,
    ) -> Manifest:
        """Commit each table's day (curated, quarantine, marts), then write the manifest naming
        the versions; returns the manifest as written, with its URL. `on_commit(table, version)`
        is told of each commit as it happens (for the run's log)."""
        before = {name: ensure_table(self.warehouse, self.options, TABLES[name]).version() for name in COMMIT_ORDER}
        # The fence: if any table's day is published by another run from here on, stop.
        stamps = {name: day_stamp(self.warehouse, self.options, TABLES[name], self.sale_date) for name in COMMIT_ORDER}
        versions: dict[str, int] = {}
        try:
            for name in COMMIT_ORDER:
                if self.leased and not holds_lease(self.warehouse, self.options, self.sale_date, self.run_id):
                    raise PublishConflict(f"{self.sale_date}: this run lost the day's lease to another run")
                for other in COMMIT_ORDER[COMMIT_ORDER.index(name) + 1 :]:
                    if day_stamp(self.warehouse, self.options, TABLES[other], self.sale_date) != stamps[other]:
                        raise PublishConflict(f"{other} {self.sale_date}: another run published this day meanwhile")
                versions[name] = commit_day(
                    self.warehouse,
                    self.options,
                    TABLES[name],
                    self.sale_date,
                    files.get(name, ()),
                    self.run_id,
                    expected=stamps[name],
                )
                if on_commit:
                    on_commit(name, versions[name])
            return write_manifest(self.root, manifest.model_copy(update={"tables": versions}))
        except Exception:
            self._revert(versions, before, stamps)
            raise

    def _revert(self, committed: Mapping[str, int], before: Mapping[str, int], stamps: Mapping[str, int]) -> None:
        """Put the tables this run already committed back to the day as it was, so a failure part
        way leaves the old day in every table. A table another run has published since is left
        alone (its day is newer and whole). If the store refuses even that, the manifest still
        names the old run and the next run publishes the day whole."""
        for name in reversed(list(committed)):
            try:
                revert_day(
                    self.warehouse, self.options, TABLES[name], self.sale_date, before[name], expected=stamps[name] + 1
                )
            except Exception:
                continue

    def cleanup(self) -> None:
        """Drop this run's scratch data (never anything published)."""
        remove_tree(self.root.fs, self.scratch)


def rollback_day(warehouse: str, options: Mapping[str, Any] | None, sale_date: str) -> Manifest:
    """Return a day to the run that published it before the current one, in every table, and
    restore that run's manifest (with the new table versions). Returns the restored manifest."""
    root = location(warehouse, options)
    current_path = root.join(MANIFESTS, manifest_name(sale_date))
    if not exists(root.fs, current_path):
        raise NothingPublishedError(f"{sale_date} was never published in {root.url}")
    current = Manifest.model_validate(read_json(root.fs, current_path))
    published_in = [
        {run for _, run in day_history(root.url, options, TABLES[name], sale_date)} for name in COMMIT_ORDER
    ]
    complete = set.intersection(*published_in)  # runs that committed the day in every table
    earlier = [
        run
        for _, run in day_history(root.url, options, TABLES["curated"], sale_date)
        if run != current.run_id and run in complete and exists(root.fs, run_manifest_path(root, sale_date, run))
    ]
    if not earlier:
        raise NothingPublishedError(f"{sale_date} has no earlier publication than run {current.run_id} to roll back to")
    previous = earlier[0]
    saved = run_manifest_path(root, sale_date, previous)
    manifest = Manifest.model_validate(read_json(root.fs, saved))
    versions = {name: restore_day(root.url, options, TABLES[name], sale_date, previous) for name in COMMIT_ORDER}
    return write_manifest(root, manifest.model_copy(update={"tables": versions}))
