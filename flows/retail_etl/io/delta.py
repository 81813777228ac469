"""Delta Lake tables: data files written by any worker, then one atomic commit per table and day.

S3 has no rename, so a day cannot be swapped in by moving folders. Instead every worker writes
its Parquet data files straight into the table's folder under names no other run uses; they
are invisible to readers until the run commits them. `commit_day` then makes one Delta
transaction that removes the day's current files from the table and adds exactly this run's
(delta-rs commits with a conditional put on S3 and MinIO, so no lock service is needed).
Nothing is deleted by a run: replaced files stay readable by time travel until `vacuum`.

Two runs of the same day are serialised upstream (a lease in the warehouse); as a last
guard every commit of a day also records an application transaction ``publish/<day>`` whose
version must advance by one, so a second commit started from the same snapshot fails with
`PublishConflict` instead of merging two runs.

>>> import tempfile, pandas as pd
>>> root = tempfile.mkdtemp()
>>> table = TABLES["marts"]
>>> rows = pd.DataFrame({"region": ["north"], "revenue": [10.0], "units": [3], "transactions": [2],
...                      "avg_ticket": [5.0], "small_tickets": [2], "medium_tickets": [0], "large_tickets": [0]})
>>> written = write_data_file(root, None, table, {"sale_date": "2024-01-15"}, "r1", rows)
>>> version = commit_day(root, None, table, "2024-01-15", [written], run_id="r1")
>>> read_day(root, None, table, "2024-01-15")["revenue"].tolist()
[10.0]
"""

from __future__ import annotations

import json
import math
import posixpath
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, Transaction

from ..contract.columns import CURATED_FILE_COLUMNS, MART_COLUMNS, QUARANTINE_COLUMNS
from ..contract.layout import CURATED, MARTS, QUARANTINE_ROWS
from ..errors import PublicationError, PublishConflict
from .storage import is_remote, location, normalize, parquet_bytes, storage_access, write_bytes

_TEXT = pa.string()


@dataclass(frozen=True)
class TableSpec:
    """A published table: where it lives, its columns, and how it is partitioned."""

    name: str
    path: str
    schema: pa.Schema
    partition_by: tuple[str, ...]

    @property
    def file_schema(self) -> pa.Schema:
        """The columns stored in data files (partition columns live in the folder names)."""
        return pa.schema([field for field in self.schema if field.name not in self.partition_by])


def _fields(names: Sequence[str], types: Mapping[str, pa.DataType]) -> list[pa.Field]:
    return [pa.field(name, types.get(name, _TEXT)) for name in names]


def _int_columns() -> dict[str, pa.DataType]:
    return {name: pa.int64() for name in MART_COLUMNS if name not in ("region", "revenue", "avg_ticket")}


#: The three tables of a published day.
TABLES: dict[str, TableSpec] = {
    "curated": TableSpec(
        "curated",
        CURATED,
        pa.schema(
            [pa.field("sale_date", _TEXT), pa.field("region", _TEXT)]
            + _fields(
                CURATED_FILE_COLUMNS,
                {"quantity": pa.int64(), "unit_price": pa.float64(), "total": pa.float64()},
            )
        ),
        ("sale_date", "region"),
    ),
    "quarantine": TableSpec(
        "quarantine",
        QUARANTINE_ROWS,
        pa.schema([pa.field("sale_date", _TEXT)] + _fields(QUARANTINE_COLUMNS, {"source_line": pa.int64()})),
        ("sale_date",),
    ),
    "marts": TableSpec(
        "marts",
        MARTS,
        pa.schema(
            [pa.field("sale_date", _TEXT)]
            + _fields(MART_COLUMNS, {"revenue": pa.float64(), "avg_ticket": pa.float64()} | _int_columns())
        ),
        ("sale_date",),
    ),
}


def delta_options(options: Mapping[str, Any] | None) -> dict[str, str]:
    """delta-rs storage options from fsspec's S3 options (endpoint, region); credentials come from
    the AWS chain of the process, as for every other S3 client.

    >>> delta_options({"endpoint_url": "http://127.0.0.1:9000", "client_kwargs": {"region_name": "eu-west-1"}})
    {'AWS_ENDPOINT_URL': 'http://127.0.0.1:9000', 'AWS_ALLOW_HTTP': 'true', 'AWS_REGION': 'eu-west-1'}
    """
    options = dict(options or {})
    converted: dict[str, str] = {}
    endpoint = options.get("endpoint_url")
    if endpoint:
        converted["AWS_ENDPOINT_URL"] = str(endpoint)
        if str(endpoint).startswith("http://"):
            converted["AWS_ALLOW_HTTP"] = "true"
    region = (options.get("client_kwargs") or {}).get("region_name")
    if region:
        converted["AWS_REGION"] = str(region)
    return converted


def table_uri(warehouse: str, table: TableSpec) -> str:
    return posixpath.join(normalize(warehouse), table.path)


def partition_dir(values: Mapping[str, str]) -> str:
    """Hive folder of a partition, values percent-encoded as delta-rs and pyarrow do.

    >>> partition_dir({"sale_date": "2024-01-15", "region": "north/east"})
    'sale_date=2024-01-15/region=north%2Feast'
    """
    return "/".join(f"{key}={quote(str(value), safe='')}" for key, value in values.items())


@dataclass(frozen=True)
class DataFile:
    """A data file written into a table's folder, not yet part of the table."""

    path: str  # relative to the table root, as stored on disk
    size: int
    partition_values: dict[str, str]
    rows: int
    modification_time: int

    def action(self) -> AddAction:
        return AddAction(
            path=self.path,
            size=self.size,
            partition_values=dict(self.partition_values),
            modification_time=self.modification_time,
            data_change=True,
            stats=json.dumps({"numRecords": self.rows}),
        )


def as_file_table(frame: pd.DataFrame, table: TableSpec) -> pa.Table:
    """The frame's data columns in the table's exact file schema (whatever dtypes came in)."""
    schema = table.file_schema
    arrays = []
    for field in schema:
        column = frame[field.name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("str")
        arrays.append(pa.array(column, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_data_file(
    warehouse: str,
    options: Mapping[str, Any] | None,
    table: TableSpec,
    partition: Mapping[str, str],
    name: str,
    frame: pd.DataFrame,
) -> DataFile:
    """Write `frame` as one data file of `table` in `partition` (invisible until committed).

    `name` must be unique to the run (e.g. ``<run_id>-b0003``); the file is never overwritten
    by another run.
    """
    values = {key: str(partition[key]) for key in table.partition_by}
    relative = f"{partition_dir(values)}/{name}.parquet"
    data = parquet_bytes(as_file_table(frame, table))
    root = location(table_uri(warehouse, table), options)
    write_bytes(root.fs, root.join(relative), data)
    return DataFile(relative, len(data), values, len(frame), int(time.time() * 1000))


def open_table(warehouse: str, options: Mapping[str, Any] | None, table: TableSpec) -> DeltaTable | None:
    """The table's current version, or None if it was never created."""
    uri = table_uri(warehouse, table)
    try:
        with storage_access("open the Delta table", uri):
            return DeltaTable(uri, storage_options=delta_options(options))
    except TableNotFoundError:
        return None


def ensure_table(warehouse: str, options: Mapping[str, Any] | None, table: TableSpec) -> DeltaTable:
    """Open the table, creating it empty first if it does not exist yet."""
    existing = open_table(warehouse, options, table)
    if existing is not None:
        return existing
    uri = table_uri(warehouse, table)
    try:
        with storage_access("create the Delta table", uri):
            if not is_remote(uri):
                location(uri).fs.makedirs(uri, exist_ok=True)
            return DeltaTable.create(
                uri,
                schema=table.schema,
                partition_by=list(table.partition_by),
                mode="ignore",
                storage_options=delta_options(options),
                name=table.name,
            )
    except (CommitFailedError, DeltaError):  # created meanwhile by another run
        created = open_table(warehouse, options, table)
        if created is None:
            raise
        return created


def _app_id(sale_date: str) -> str:
    return f"retail-etl/publish/{sale_date}"


def _check_written(
    warehouse: str, options: Mapping[str, Any] | None, table: TableSpec, files: Sequence[DataFile]
) -> None:
    """Every file a commit adds is there with its size: a version never references a missing file
    (one deleted since it was written, by an operator's vacuum with a zero retention, say). One
    listing per partition folder, not a request per file."""
    root = location(table_uri(warehouse, table), options)
    sizes: dict[tuple[str, str], int] = {}
    with storage_access("check the written files of", table_uri(warehouse, table)):
        for folder in sorted({posixpath.dirname(root.join(file.path)) for file in files}):
            root.fs.invalidate_cache(folder)
            try:
                entries = root.fs.ls(folder, detail=True)
            except FileNotFoundError:
                entries = []
            sizes.update({(folder, posixpath.basename(entry["name"])): int(entry["size"]) for entry in entries})
    for file in files:
        path = root.join(file.path)
        size = sizes.get((posixpath.dirname(path), posixpath.basename(path)))
        if size != file.size:
            found = "gone" if size is None else f"{size} bytes, not {file.size}"
            raise PublicationError(
                f"{table.name}: written file {file.path} is {found} (removed by a vacuum during the run?); "
                "nothing was committed, run the day again"
            )


def commit_day(
    warehouse: str,
    options: Mapping[str, Any] | None,
    table: TableSpec,
    sale_date: str,
    files: Sequence[DataFile],
    run_id: str,
    metadata: Mapping[str, str] | None = None,
    expected: int | None = None,
) -> int:
    """One transaction: the day's current files leave the table and exactly `files` join it.

    Returns the committed version. `expected` is the day's publication count (`day_stamp`) the
    caller saw; if another run published the day since, or publishes it concurrently, this fails
    with `PublishConflict` and commits nothing.
    """
    foreign = [f.path for f in files if f.partition_values.get("sale_date") != sale_date]
    if foreign:
        raise ValueError(f"files outside sale_date={sale_date}: {foreign[:3]}")
    delta = ensure_table(warehouse, options, table)
    app_id = _app_id(sale_date)
    current = delta.transaction_version(app_id) or 0
    if expected is not None and current != expected:
        raise PublishConflict(
            f"{table.name} {sale_date}: another run published this day meanwhile (publication {current}, "
            f"expected {expected}); nothing was committed"
        )
    version = current + 1
    properties = CommitProperties(
        custom_metadata={"retail_etl.run_id": run_id, "retail_etl.sale_date": sale_date, **(metadata or {})},
        app_transactions=[Transaction(app_id=app_id, version=version)],
    )
    _check_written(warehouse, options, table, files)
    with storage_access("commit to the Delta table", table_uri(warehouse, table)):
        try:
            delta.create_write_transaction(
                actions=[file.action() for file in files],
                mode="overwrite",
                schema=table.schema,
                partition_by=list(table.partition_by),
                partition_filters=[("sale_date", "=", sale_date)],
                commit_properties=properties,
            )
        except CommitFailedError as error:
            raise PublishConflict(
                f"{table.name} {sale_date}: another run published this day meanwhile; nothing was committed ({error})"
            ) from None
        delta.update_incremental()
    committed: int = delta.version()
    return committed


def day_stamp(warehouse: str, options: Mapping[str, Any] | None, table: TableSpec, sale_date: str) -> int:
    """How many times the day has been committed to the table (0 if never): the fence of a publication."""
    delta = open_table(warehouse, options, table)
    return (delta.transaction_version(_app_id(sale_date)) or 0) if delta is not None else 0


def read_day(
    warehouse: str,
    options: Mapping[str, Any] | None,
    table: TableSpec,
    sale_date: str,
    version: int | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The rows of one day in the table's current (or given) version; empty if none."""
    delta = open_table(warehouse, options, table)
    if delta is None:
        return pd.DataFrame({field.name: pd.Series(dtype="object") for field in table.schema})
    with storage_access("read the Delta table", table_uri(warehouse, table)):
        if version is not None:
            delta.load_as_version(version)
        frame: pd.DataFrame = delta.to_pandas(columns=columns, filters=[("sale_date", "=", sale_date)])
    return frame


def day_files(delta: DeltaTable, sale_date: str) -> list[DataFile]:
    """The data files of one day in the table version `delta` is at."""
    actions = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
    files = []
    for action in actions:
        values = {key.split(".", 1)[1]: value for key, value in action.items() if key.startswith("partition.")}
        if values.get("sale_date") != sale_date:
            continue
        files.append(
            DataFile(
                path=unquote(action["path"]),  # the log stores paths URL-encoded once more
                size=int(action["size_bytes"]),
                partition_values={key: str(value) for key, value in values.items()},
                rows=int(action.get("num_records") or 0),
                modification_time=int(action["modification_time"].timestamp() * 1000)
                if hasattr(action["modification_time"], "timestamp")
                else int(action["modification_time"]),
            )
        )
    return files


def day_history(
    warehouse: str, options: Mapping[str, Any] | None, table: TableSpec, sale_date: str
) -> list[tuple[int, str]]:
    """(version, run_id) of every commit that published `sale_date` in the table, newest first."""
    delta = open_table(warehouse, options, table)
    if delta is None:
        return []
    with storage_access("read the history of the Delta table", table_uri(warehouse, table)):
        history = delta.history()
    entries = [
        (int(entry["version"]), str(entry.get("retail_etl.run_id")))
        for entry in history
        if entry.get("retail_etl.sale_date") == sale_date
    ]
    return sorted(entries, reverse=True)


def restore_day(
    warehouse: str, options: Mapping[str, Any] | None, table: TableSpec, sale_date: str, run_id: str
) -> int:
    """Commit the day's files as run `run_id` published them (time travel); returns the new version."""
    versions = [version for version, run in day_history(warehouse, options, table, sale_date) if run == run_id]
    if not versions:
        raise ValueError(f"{table.name} has no publication of {sale_date} by run {run_id}")
    return revert_day(warehouse, options, table, sale_date, versions[0])


def revert_day(
    warehouse: str,
    options: Mapping[str, Any] | None,
    table: TableSpec,
    sale_date: str,
    version: int,
    expected: int | None = None,
) -> int:
    """Commit the day's files as they were in table `version` (none if the day had none then)."""
    delta = ensure_table(warehouse, options, table)
    with storage_access("read the Delta table", table_uri(warehouse, table)):
        delta.load_as_version(version)
        files = day_files(delta, sale_date)
    published = [run for committed, run in day_history(warehouse, options, table, sale_date) if committed <= version]
    run_id = published[0] if published else ""
    return commit_day(warehouse, options, table, sale_date, files, run_id, {"retail_etl.restored": "true"}, expected)


def vacuum(
    warehouse: str,
    options: Mapping[str, Any] | None,
    table: TableSpec,
    retention_hours: float,
    dry_run: bool = False,
    keep_days: Collection[str] = (),
) -> list[str]:
    """Delete files that left the table (or were never committed) more than `retention_hours` ago,
    except under the day partitions `keep_days` (``sale_date=D``: days a run is publishing, whose
    written files are not committed yet); returns them."""
    delta = open_table(warehouse, options, table)
    if delta is None:
        return []
    uri = table_uri(warehouse, table)
    with storage_access("vacuum the Delta table", uri):
        candidates: list[str] = delta.vacuum(
            retention_hours=math.ceil(retention_hours), dry_run=True, enforce_retention_duration=False, full=True
        )
    removed = [path for path in candidates if path.split("/", 1)[0] not in keep_days]
    if not dry_run:
        root = location(uri, options)
        with storage_access("vacuum the Delta table", uri):
            for path in removed:
                root.fs.rm_file(root.join(path))
    return removed
