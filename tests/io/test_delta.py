"""The Delta tables underneath a publication: one commit per table and day, its guard, vacuum."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest
from deltalake import DeltaTable

from retail_etl.errors import ConfigurationError, PublicationError, PublishConflict
from retail_etl.io import delta
from retail_etl.io.delta import (
    TABLES,
    commit_day,
    delta_options,
    ensure_table,
    open_table,
    read_day,
    restore_day,
    table_uri,
    vacuum,
    write_data_file,
)
from retail_etl.io.housekeeping import RETENTION_FLOOR, vacuum_warehouse
from retail_etl.io.lease import day_lease

DAY = "2024-01-15"
MARTS = TABLES["marts"]


@dataclass(frozen=True)
class Store:
    """A warehouse root and the options that reach it (fsspec's), on local disk or S3."""

    warehouse: str
    options: dict[str, Any] | None

    def table(self, version: int | None = None) -> DeltaTable:
        return DeltaTable(
            table_uri(self.warehouse, MARTS), version=version, storage_options=delta_options(self.options)
        )

    def files(self) -> list[str]:
        """Every data file in the table's folder, committed or not (relative paths)."""
        root = delta.location(table_uri(self.warehouse, MARTS), self.options)
        root.fs.invalidate_cache()
        return sorted(
            path.removeprefix(root.root + "/")
            for path in root.fs.find(root.root)
            if path.endswith(".parquet") and "/_delta_log/" not in path
        )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(str(tmp_path / "warehouse"), None)
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"{bucket}/warehouse", {"endpoint_url": endpoint})


@pytest.fixture
def local(tmp_path) -> Store:
    return Store(str(tmp_path / "warehouse"), None)


def mart(revenue: float, region: str = "north") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": [region],
            "revenue": [revenue],
            "units": [3],
            "transactions": [2],
            "avg_ticket": [revenue / 2],
            "small_tickets": [2],
            "medium_tickets": [0],
            "large_tickets": [0],
        }
    )


def write(store: Store, run_id: str, revenue: float, sale_date: str = DAY, region: str = "north"):
    return write_data_file(
        store.warehouse, store.options, MARTS, {"sale_date": sale_date}, run_id, mart(revenue, region)
    )


def publish(store: Store, run_id: str, revenue: float, sale_date: str = DAY) -> int:
    return commit_day(
        store.warehouse, store.options, MARTS, sale_date, [write(store, run_id, revenue, sale_date)], run_id=run_id
    )


def revenues(store: Store, sale_date: str = DAY, version: int | None = None) -> list[float]:
    return read_day(store.warehouse, store.options, MARTS, sale_date, version=version)["revenue"].tolist()


def test_commit_replaces_the_day_and_keeps_the_old_one_by_time_travel(store):
    first = publish(store, "run1", 10.0)
    publish(store, "other", 99.0, sale_date="2024-01-16")
    second = publish(store, "run2", 20.0)

    assert second > first
    assert revenues(store) == [20.0]
    assert revenues(store, "2024-01-16") == [99.0]
    assert revenues(store, version=first) == [10.0]
    table = store.table()
    assert table.version() == second
    assert sorted(table.to_pandas(filters=[("sale_date", "=", DAY)])["revenue"]) == [20.0]
    assert store.table(version=first).to_pandas(filters=[("sale_date", "=", DAY)])["revenue"].tolist() == [10.0]
    # Nothing was deleted: run1's file is still in the folder, only no longer in the table.
    assert f"sale_date={DAY}/run1.parquet" in store.files()
    assert sorted(uri.rsplit("/", 1)[-1] for uri in table.file_uris()) == ["other.parquet", "run2.parquet"]
    assert delta.day_history(store.warehouse, store.options, MARTS, DAY) == [(second, "run2"), (first, "run1")]


def test_commit_refuses_files_of_another_day(local):
    stray = write(local, "run1", 10.0, sale_date="2024-01-16")
    with pytest.raises(ValueError, match="outside sale_date=2024-01-15"):
        commit_day(local.warehouse, None, MARTS, DAY, [write(local, "run1b", 5.0), stray], run_id="run1")
    assert open_table(local.warehouse, None, MARTS) is None  # refused before anything was created

    publish(local, "run0", 1.0)
    before = local.table().version()
    with pytest.raises(ValueError):
        commit_day(local.warehouse, None, MARTS, DAY, [stray], run_id="run2")
    assert local.table().version() == before and revenues(local) == [1.0]


def stale_tables(monkeypatch, store: Store) -> tuple[DeltaTable, DeltaTable]:
    """Two handles on the table at the same version; commit_day gets them in turn (as two runs
    that both opened the table before either committed)."""
    handles = (store.table(), store.table())
    queue = list(handles)
    monkeypatch.setattr(delta, "ensure_table", lambda *args, **kwargs: queue.pop(0))
    return handles


@pytest.mark.parametrize("before", ["new table", "day empty", "day published"])
def test_two_commits_of_a_day_from_one_snapshot_one_wins(store, monkeypatch, before):
    ensure_table(store.warehouse, store.options, MARTS)
    if before != "new table":
        publish(store, "elsewhere", 5.0, sale_date="2024-01-16")
    if before == "day published":
        publish(store, "run0", 1.0)
    start = store.table().version()
    guard = store.table().transaction_version(f"retail-etl/publish/{DAY}")

    first, second = stale_tables(monkeypatch, store)
    assert first.version() == second.version() == start
    won = publish(store, "run1", 10.0)
    with pytest.raises(PublishConflict, match=f"marts {DAY}: another run published this day meanwhile"):
        publish(store, "run2", 20.0)
    monkeypatch.undo()

    assert won == start + 1 and store.table().version() == won
    assert revenues(store) == [10.0]
    assert store.table().transaction_version(f"retail-etl/publish/{DAY}") == (guard or 0) + 1
    assert [run for _, run in delta.day_history(store.warehouse, store.options, MARTS, DAY)][0] == "run1"
    assert f"sale_date={DAY}/run2.parquet" in store.files()  # written, never part of the table


def test_commits_of_different_days_from_one_snapshot_both_land(local, monkeypatch):
    publish(local, "elsewhere", 5.0, sale_date="2024-01-10")
    stale_tables(monkeypatch, local)
    publish(local, "run1", 10.0, sale_date=DAY)
    publish(local, "run2", 20.0, sale_date="2024-01-16")
    monkeypatch.undo()
    assert (revenues(local), revenues(local, "2024-01-16"), revenues(local, "2024-01-10")) == ([10.0], [20.0], [5.0])


def test_uncommitted_files_are_invisible_to_readers(store):
    publish(store, "run1", 10.0)
    write(store, "run2", 20.0)  # a run that died before its commit
    write(store, "run2", 30.0, sale_date="2024-01-16")
    assert f"sale_date={DAY}/run2.parquet" in store.files()
    assert "sale_date=2024-01-16/run2.parquet" in store.files()

    table = store.table()
    assert table.to_pandas()[["sale_date", "revenue"]].values.tolist() == [[DAY, 10.0]]
    assert pl.read_delta(table.table_uri, storage_options=delta_options(store.options))["revenue"].to_list() == [10.0]
    with duckdb.connect() as con:
        con.register("marts", table.to_pyarrow_dataset())
        assert con.sql("select sale_date, sum(revenue) from marts group by sale_date").fetchall() == [(DAY, 10.0)]
    assert revenues(store, "2024-01-16") == []


def test_vacuum_removes_replaced_files_only_after_the_retention(local):
    first = publish(local, "run1", 10.0)
    publish(local, "run2", 20.0)
    publish(local, "other", 5.0, sale_date="2024-01-16")
    everything = local.files()
    assert everything == ["sale_date=2024-01-15/run1.parquet", "sale_date=2024-01-15/run2.parquet"] + [
        "sale_date=2024-01-16/other.parquet"
    ]

    assert vacuum(local.warehouse, None, MARTS, retention_hours=24) == []
    assert vacuum(local.warehouse, None, MARTS, retention_hours=1) == []
    assert local.files() == everything and revenues(local, version=first) == [10.0]

    would = vacuum(local.warehouse, None, MARTS, retention_hours=0, dry_run=True)
    assert [path.rsplit("/", 2)[-2:] for path in would] == [["sale_date=2024-01-15", "run1.parquet"]]
    assert local.files() == everything

    removed = vacuum(local.warehouse, None, MARTS, retention_hours=0)
    assert [path.rsplit("/", 1)[-1] for path in removed] == ["run1.parquet"]
    assert local.files() == ["sale_date=2024-01-15/run2.parquet", "sale_date=2024-01-16/other.parquet"]
    assert revenues(local) == [20.0] and revenues(local, "2024-01-16") == [5.0]


def test_restore_brings_back_a_runs_files_and_vacuum_keeps_them(store):
    first = publish(store, "run1", 10.0)
    publish(store, "run2", 20.0)
    restored = restore_day(store.warehouse, store.options, MARTS, DAY, "run1")
    assert restored > first and revenues(store) == [10.0]
    assert sorted(uri.rsplit("/", 1)[-1] for uri in store.table().file_uris()) == ["run1.parquet"]
    assert delta.day_history(store.warehouse, store.options, MARTS, DAY)[0] == (restored, "run1")
    with pytest.raises(ValueError, match="no publication of 2024-01-15 by run run9"):
        restore_day(store.warehouse, store.options, MARTS, DAY, "run9")

    # run1's files left the table once and came back: only run2's may go.
    removed = vacuum(store.warehouse, store.options, MARTS, retention_hours=0)
    assert [path.rsplit("/", 1)[-1] for path in removed] == ["run2.parquet"]
    assert store.files() == [f"sale_date={DAY}/run1.parquet"] and revenues(store) == [10.0]


def test_vacuum_of_a_table_never_created_is_a_no_op(local):
    assert vacuum(local.warehouse, None, MARTS, retention_hours=0) == []
    assert open_table(local.warehouse, None, MARTS) is None


def test_vacuum_keeps_the_files_of_days_being_published(store):
    publish(store, "run1", 10.0)
    publish(store, "run2", 20.0)
    in_flight = write(store, "run3", 30.0)  # written, not committed yet
    kept = vacuum(store.warehouse, store.options, MARTS, retention_hours=0, keep_days={f"sale_date={DAY}"})
    assert kept == [] and in_flight.path in store.files()
    removed = vacuum(store.warehouse, store.options, MARTS, retention_hours=0)
    assert sorted(path.rsplit("/", 1)[-1] for path in removed) == ["run1.parquet", "run3.parquet"]


def test_a_commit_of_a_file_that_is_gone_commits_nothing(store):
    publish(store, "run1", 10.0)
    written = write(store, "run2", 20.0)
    root = delta.location(table_uri(store.warehouse, MARTS), store.options)
    root.fs.rm_file(root.join(written.path))
    version = store.table().version()
    with pytest.raises(PublicationError, match="run2.parquet is gone .*nothing was committed"):
        commit_day(store.warehouse, store.options, MARTS, DAY, [written], run_id="run2")
    assert store.table().version() == version and revenues(store) == [10.0]


def test_a_vacuum_below_the_floor_is_refused_unless_forced(local):
    publish(local, "run1", 10.0)
    publish(local, "run2", 20.0)
    with pytest.raises(ConfigurationError, match="retention of 0 h is below the floor of 24 h.*--force"):
        vacuum_warehouse(local.warehouse, None, timedelta(0), timedelta(days=1), timedelta(days=7))
    assert len(local.files()) == 2
    removed = vacuum_warehouse(local.warehouse, None, timedelta(0), timedelta(days=1), timedelta(days=7), force=True)
    assert [path.rsplit("/", 1)[-1] for path in removed["table marts"].paths] == ["run1.parquet"]
    assert removed["table marts"].bytes > 0
    assert vacuum_warehouse(local.warehouse, None, RETENTION_FLOOR, timedelta(days=1), timedelta(days=7))


def test_a_forced_zero_retention_vacuum_during_a_run_leaves_the_day_whole(store):
    """The attack: `vacuum` with a zero retention, forced, in the middle of a re-run of a day."""
    publish(store, "run1", 10.0)
    other = write(store, "run9", 5.0, sale_date="2024-01-16")  # a dead run's leftovers, no lease
    with day_lease(store.warehouse, store.options, DAY, "run2", wait_seconds=0):
        files = [write(store, "run2", 20.0), write(store, "run2-b", 1.0, region="south")]
        removed = vacuum_warehouse(
            store.warehouse, store.options, timedelta(0), timedelta(0), timedelta(0), force=True
        )  # fmt: skip
        assert [path.rsplit("/", 1)[-1] for path in removed["table marts"].paths] == [other.path.rsplit("/", 1)[-1]]
        commit_day(store.warehouse, store.options, MARTS, DAY, files, run_id="run2")
    assert sorted(revenues(store)) == [1.0, 20.0]
    assert store.table().to_pandas(filters=[("sale_date", "=", DAY)])["revenue"].sum() == 21.0
