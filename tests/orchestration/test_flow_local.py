"""The daily flow end to end on a local warehouse: real Prefect API, real Dask LocalCluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort

from retail_etl.contract.columns import QUARANTINE_COLUMNS
from retail_etl.contract.schemas import CURATED_ROWS, MART_ROWS, QUARANTINE_ROWS
from retail_etl.synth.generate import REGIONS, generate_day

DAY = "2024-01-15"
#: The published tables, relative to the warehouse.
TABLES = {"curated": "curated/sales", "quarantine": "quarantine/sales", "marts": "marts/region_daily"}


@pytest.fixture
def regions(monkeypatch):
    monkeypatch.setenv("RETAIL_ETL_REGIONS", ",".join(REGIONS))


def batches_reused(flow_run_id: str) -> list[bool]:
    """Per validate-files task run of the flow run (sorted): whether its batch's extraction was a cache hit."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
    return sorted(run.state.result().cached for run in runs if run.name.startswith("validate-files"))


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def table(warehouse: Path, name: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(str(warehouse / TABLES[name]), version=version)


def read(warehouse: Path, name: str, day: str = DAY, version: int | None = None) -> pd.DataFrame:
    """The day's rows in a table's current (or given) version: what a reader sees, never a folder glob."""
    return table(warehouse, name, version).to_pandas(filters=[("sale_date", "=", day)])


def file_names(delta: DeltaTable) -> list[str]:
    """Names of the data files the table version references."""
    return sorted(uri.rsplit("/", 1)[-1] for uri in delta.file_uris())


def versions(warehouse: Path) -> dict[str, int]:
    return {name: table(warehouse, name).version() for name in TABLES}


def validate(curated: pd.DataFrame, quarantine: pd.DataFrame, mart: pd.DataFrame) -> None:
    """The published contract on what the tables return."""
    CURATED_ROWS.validate(curated[list(CURATED_ROWS.columns)])
    QUARANTINE_ROWS.validate(quarantine.drop(columns=["sale_date"]))
    MART_ROWS.validate(mart.drop(columns=["sale_date"]))


def test_day_is_published_and_every_row_accounted_for(run_day, tmp_dirs, regions):
    landing, warehouse = tmp_dirs
    day = generate_day(landing, DAY, rows=12_000, stores=6, bad_fraction=0.02, seed=3, bad_files=3)
    manifest = run_day(DAY, landing, warehouse)

    assert manifest.rows_in == day.rows == manifest.rows_published + manifest.rows_quarantined
    assert manifest.quarantine_reasons == dict(day.injected)
    assert len(manifest.files_accepted) == 6
    assert sorted(f.reason for f in manifest.files_rejected) == ["bad_encoding", "missing_columns", "unreadable"]
    on_disk = json.loads((warehouse / "manifests" / f"sale_date={DAY}.json").read_text())
    assert on_disk == manifest.model_dump(mode="json")

    assert manifest.tables == versions(warehouse) == on_disk["tables"]
    curated = read(warehouse, "curated")
    assert len(curated) == manifest.rows_published
    assert set(curated["region"].astype(str)) == set(REGIONS)
    assert set(curated["sale_date"].astype(str)) == {DAY}
    assert curated["transaction_id"].is_unique
    assert (curated["total"] - (curated["quantity"] * curated["unit_price"]).round(2)).abs().max() < 1e-9
    by_region = curated.groupby(curated["region"].astype(str))["total"].sum().round(2).to_dict()
    assert by_region == pytest.approx({r: v.revenue for r, v in manifest.regions.items()})

    quarantine = read(warehouse, "quarantine")
    assert len(quarantine) == manifest.rows_quarantined
    assert set(QUARANTINE_COLUMNS) <= set(quarantine.columns)
    assert quarantine["source_line"].min() >= 2

    assert set(quarantine["source_file"]) <= {f.file for f in manifest.files_accepted}
    assert quarantine["reason"].value_counts().to_dict() == manifest.quarantine_reasons

    mart = read(warehouse, "marts")
    assert sorted(mart["region"]) == sorted(REGIONS)
    assert mart["transactions"].sum() == manifest.rows_published
    assert (
        mart[["small_tickets", "medium_tickets", "large_tickets"]].sum(axis=1).tolist() == mart["transactions"].tolist()
    )
    validate(curated, quarantine, mart)

    for rejected, source in zip(
        sorted(manifest.files_rejected, key=lambda f: f.file), sorted(day.bad_files), strict=True
    ):
        assert Path(rejected.quarantined_to).read_bytes() == Path(source).read_bytes()
    assert not list((warehouse / "_staging").glob("*"))


def test_duckdb_and_polars_read_the_same_figures(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=3_000, stores=5, bad_fraction=0.01, seed=4)
    first = run_day(DAY, landing, warehouse)
    generate_day(landing, DAY, rows=2_000, stores=5, bad_fraction=0.01, seed=5)  # the day again, other figures
    manifest = run_day(DAY, landing, warehouse)
    assert manifest.revenue != first.revenue
    curated = table(warehouse, "curated")
    with duckdb.connect() as con:
        con.register("curated", curated.to_pyarrow_dataset())
        duck = dict(
            con.sql(
                f"select region, round(sum(total), 2) from curated where sale_date = '{DAY}' group by region"
            ).fetchall()
        )
    polars = (
        pl.scan_delta(str(warehouse / "curated" / "sales"))
        .filter(pl.col("sale_date") == DAY)
        .group_by("region")
        .agg(pl.col("total").sum())
        .collect()
        .to_dicts()
    )
    expected = {region: figures.revenue for region, figures in manifest.regions.items()}
    assert duck == pytest.approx(expected)
    assert {row["region"]: round(row["total"], 2) for row in polars} == pytest.approx(expected)
    marts = pl.read_delta(str(warehouse / "marts" / "region_daily")).filter(pl.col("sale_date") == DAY)
    assert dict(zip(marts["region"], marts["revenue"], strict=True)) == pytest.approx(expected)


def test_rerun_replaces_the_day_and_reuses_cached_extractions(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=4_000, stores=4, bad_fraction=0.02, seed=8)
    first = run_day(DAY, landing, warehouse)
    second = run_day(DAY, landing, warehouse)

    assert second.run_id != first.run_id
    batches = batches_reused(first.run_id)
    assert batches and not any(batches) and batches_reused(second.run_id) == [True] * len(batches)
    assert all(second.tables[name] > first.tables[name] for name in TABLES)
    for name in TABLES:
        current, replaced = file_names(table(warehouse, name)), file_names(table(warehouse, name, first.tables[name]))
        assert current and all(file.startswith(second.run_id) for file in current), name
        assert replaced and all(file.startswith(first.run_id) for file in replaced), name
        on_disk = {p.name for p in (warehouse / TABLES[name]).rglob("*.parquet")}
        assert set(current) | set(replaced) <= on_disk  # the replaced files stay until vacuum
    curated = read(warehouse, "curated")
    assert len(curated) == first.rows_published == second.rows_published
    old = read(warehouse, "curated", version=first.tables["curated"])
    assert sorted(old["transaction_id"]) == sorted(curated["transaction_id"])  # same landing data, by time travel
    assert len(read(warehouse, "quarantine", version=first.tables["quarantine"])) == first.rows_quarantined

    # Rewrite one store's file: its batch (one per Dask thread here) is extracted again, the others are not.
    generate_day(landing / "other", DAY, rows=1_500, stores=1, seed=99)
    target = landing / "sales" / f"sale_date={DAY}" / "S001.csv"
    target.write_bytes((landing / "other" / "sales" / f"sale_date={DAY}" / "S001.csv").read_bytes())
    third = run_day(DAY, landing, warehouse)
    assert batches_reused(third.run_id) == [False] + [True] * (len(batches) - 1)
    assert third.rows_in == 3_000 + 1_500
    assert len(read(warehouse, "curated")) == third.rows_published
    assert read(warehouse, "marts")["transactions"].sum() == third.rows_published
    assert len(read(warehouse, "curated", version=second.tables["curated"])) == second.rows_published


def test_extraction_results_are_plain_parquet_in_result_storage(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=1_000, stores=2, seed=1)
    run_day(DAY, landing, warehouse)
    results = sorted((warehouse / "_prefect" / "results").glob("extract-*"))
    keys = sorted((warehouse / "_prefect" / "cache-keys").glob("extract-*"))
    assert results and [p.name for p in keys] == [p.name for p in results]  # one per batch
    table = pa.concat_tables(pq.read_table(path) for path in results)
    assert table.num_rows == 1_000 and "transaction_id" in table.column_names
    assert sorted(set(table.column("source_file").to_pylist())) == sorted(
        str(p) for p in (landing / "sales" / f"sale_date={DAY}").iterdir()
    )
    metadata = [json.loads(key.read_text()) for key in keys]
    assert {entry["serializer"]["type"] for entry in metadata} == {"retail-etl-parquet"}
    assert all(entry["expiration"] for entry in metadata)  # RETAIL_ETL_CACHE_EXPIRATION


def test_failure_before_commit_leaves_the_published_day_intact(run_day, tmp_dirs, monkeypatch):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=2_000, stores=3, seed=2)
    first = run_day(DAY, landing, warehouse)
    logs = {p for p in files_under(warehouse) if "/_delta_log/" in p}
    manifests = {p: (warehouse / p).read_bytes() for p in files_under(warehouse) if p.startswith("manifests/")}
    before = {name: read(warehouse, name) for name in TABLES}

    generate_day(landing, DAY, rows=2_600, stores=3, seed=3)  # new data for the same day

    def storage_down(self, mart):
        raise OSError("simulated storage outage while writing the mart")

    monkeypatch.setattr("retail_etl.io.publish.DayPublication.write_mart", storage_down)
    monkeypatch.setenv("RETAIL_ETL_IO_RETRIES", "0")
    state = run_day(DAY, landing, warehouse, return_state=True)
    assert state.is_failed() and "simulated storage outage" in state.message

    assert {p for p in files_under(warehouse) if "/_delta_log/" in p} == logs  # no table was committed
    assert versions(warehouse) == first.tables
    for name in TABLES:
        pd.testing.assert_frame_equal(read(warehouse, name), before[name])
        assert all(file.startswith(first.run_id) for file in file_names(table(warehouse, name)))
    # The failed run's data files were written (and are left for vacuum), but no reader sees them.
    written = {
        p.name for p in (warehouse / "curated" / "sales").rglob("*.parquet") if not p.name.startswith(first.run_id)
    }
    assert written and {name.rsplit("-", 1)[0] for name in written} == {str(state.state_details.flow_run_id)}
    assert {p: (warehouse / p).read_bytes() for p in files_under(warehouse) if p.startswith("manifests/")} == manifests
    assert json.loads((warehouse / "manifests" / f"sale_date={DAY}.json").read_text())["run_id"] == first.run_id
    assert not list((warehouse / "_staging").glob("*"))


def test_strict_fails_the_day_on_an_unreadable_file(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=500, stores=2, seed=1, bad_files=1)
    state = run_day(DAY, landing, warehouse, strict=True, return_state=True)
    assert state.is_failed()
    assert "StrictModeError" in state.message or "strict" in state.message.lower()
    assert not (warehouse / "manifests").exists()
    assert not (warehouse / "curated").exists()
    assert not any(DeltaTable.is_deltatable(str(warehouse / path)) for path in TABLES.values())


def test_a_day_without_landing_files_fails_and_keeps_the_published_day(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=500, stores=2, seed=1)
    first = run_day(DAY, landing, warehouse)
    state = run_day(DAY, landing.parent / "typo", warehouse, return_state=True)
    assert state.is_failed() and "no landing files" in state.message
    assert json.loads((warehouse / "manifests" / f"sale_date={DAY}.json").read_text())["run_id"] == first.run_id


def test_empty_day_is_published_only_when_allowed(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    manifest = run_day(DAY, landing, warehouse, allow_empty=True)
    assert (manifest.rows_in, manifest.rows_published, manifest.rows_quarantined) == (0, 0, 0)
    assert manifest.regions == {} and manifest.files_accepted == []
    assert manifest.tables == versions(warehouse)
    assert all(read(warehouse, name).empty for name in TABLES)


def test_artifacts_show_the_day(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=1_000, stores=5, bad_fraction=0.02, seed=6)
    manifest = run_day(DAY, landing, warehouse)
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[manifest.run_id]))
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    # keys carry the environment (RETAIL_ETL_ENVIRONMENT, "local" when unset)
    assert by_key["retail-etl-region-figures-local"].type == "table"
    table = by_key["retail-etl-region-figures-local"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert sorted(row["region"] for row in table) == sorted(manifest.regions)
    assert "duplicate_transaction" in by_key["retail-etl-quarantine-local"].data


def test_backfill_runs_every_day(dask_address, tmp_dirs, monkeypatch):
    from retail_etl.orchestration.flows import backfill

    landing, warehouse = tmp_dirs
    monkeypatch.setenv("RETAIL_ETL_DASK_ADDRESS", dask_address)
    for offset, day in enumerate(["2024-01-01", "2024-01-03"]):
        generate_day(landing, day, rows=800, stores=2, bad_fraction=0.02, seed=offset)
    manifests = backfill(
        start="2024-01-01", end="2024-01-03", landing=str(landing), warehouse=str(warehouse), allow_empty=True
    )
    assert [m.sale_date for m in manifests] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [m.rows_in for m in manifests] == [800, 0, 800]
    marts = table(warehouse, "marts").to_pandas()
    assert marts.groupby("sale_date")["transactions"].sum().to_dict() == {
        m.sale_date: m.rows_published for m in manifests if m.rows_published
    }
    assert sorted(p.name for p in (warehouse / "manifests").iterdir() if p.is_file()) == [
        "sale_date=2024-01-01.json",
        "sale_date=2024-01-02.json",
        "sale_date=2024-01-03.json",
    ]
    assert sorted(
        str(p.relative_to(warehouse / "manifests" / "_runs")) for p in (warehouse / "manifests").glob("_runs/*/*")
    ) == [f"sale_date={m.sale_date}/{m.run_id}.json" for m in manifests]
    state = backfill(
        start="2024-01-01", end="2024-01-03", landing=str(landing), warehouse=str(warehouse), return_state=True
    )
    assert state.is_failed() and "1 of 3 days failed: 2024-01-02" in state.message


def test_a_rerun_served_from_the_cache_still_rejects_an_unreadable_file(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    day = generate_day(landing, DAY, rows=1_000, stores=2, seed=5, bad_files=2)
    folder = landing / "sales" / f"sale_date={DAY}"
    (folder / "_SUCCESS").write_text("")
    (folder / ".S009.csv.tmp").write_text("half an upload")
    (folder / "S010.csv").mkdir()
    first = run_day(DAY, landing, warehouse)
    second = run_day(DAY, landing, warehouse)

    assert all(batches_reused(second.run_id))
    assert len(second.files_rejected) == 2
    assert [(f.file, f.reason, f.detail) for f in second.files_rejected] == [
        (f.file, f.reason, f.detail) for f in first.files_rejected
    ]
    for rejected in second.files_rejected:
        assert second.run_id in rejected.quarantined_to
        assert Path(rejected.quarantined_to).read_bytes() == Path(rejected.file).read_bytes()
    assert sorted(str(f) for f in day.bad_files) == sorted(f.file for f in second.files_rejected)
    assert second.rows_in == first.rows_in == 1_000
    assert {Path(e.file).name: e.why for e in second.files_skipped} == {
        "_SUCCESS": "marker",
        ".S009.csv.tmp": "hidden",
        "S010.csv": "directory",
    }


def test_a_same_size_edit_with_its_modification_time_set_back_is_extracted_again(run_day, tmp_dirs):
    landing, warehouse = tmp_dirs
    folder = landing / "sales" / f"sale_date={DAY}"
    folder.mkdir(parents=True)
    target = folder / "S001.csv"
    header = "transaction_id,sale_date,store_id,region,product,quantity,unit_price\n"
    target.write_text(header + f"t1,{DAY},S001,north,tea,2,3.00\n")
    first = run_day(DAY, landing, warehouse)
    assert read(warehouse, "curated")["quantity"].tolist() == [2]

    before = os.stat(target)
    target.write_text(header + f"t1,{DAY},S001,north,tea,7,3.00\n")  # same size, other content
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_size == before.st_size and os.stat(target).st_mtime_ns == before.st_mtime_ns
    second = run_day(DAY, landing, warehouse)
    assert batches_reused(second.run_id) == [False]
    assert read(warehouse, "curated")["quantity"].tolist() == [7]
    assert second.revenue == 21.0 and first.revenue == 6.0
