"""The same flow against a real S3 API (moto's server on 127.0.0.1), results persisted in S3."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow.parquet as pq
import s3fs
from deltalake import DeltaTable

from retail_etl.contract.schemas import CURATED_ROWS, MART_ROWS, QUARANTINE_ROWS
from retail_etl.io.delta import delta_options
from retail_etl.synth.generate import generate_day

DAY = "2024-01-15"
TABLES = {"curated": "curated/sales", "quarantine": "quarantine/sales", "marts": "marts/region_daily"}


def fs(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)


def table(warehouse: str, name: str, endpoint: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(
        f"{warehouse}/{TABLES[name]}", version=version, storage_options=delta_options({"endpoint_url": endpoint})
    )


def read(warehouse: str, name: str, endpoint: str, version: int | None = None) -> pd.DataFrame:
    return table(warehouse, name, endpoint, version).to_pandas(filters=[("sale_date", "=", DAY)])


def file_names(delta: DeltaTable) -> list[str]:
    return sorted(uri.rsplit("/", 1)[-1] for uri in delta.file_uris())


def test_s3_landing_to_s3_warehouse_with_results_and_rerun(run_day, s3_endpoint, s3_bucket):
    landing, warehouse = f"{s3_bucket}/landing", f"{s3_bucket}/warehouse"
    day = generate_day(
        landing,
        DAY,
        rows=6_000,
        stores=4,
        bad_fraction=0.02,
        seed=12,
        bad_files=2,
        options={"endpoint_url": s3_endpoint},
    )
    first = run_day(DAY, landing, warehouse)
    s3 = fs(s3_endpoint)
    bucket = s3_bucket.removeprefix("s3://")

    manifest = json.loads(s3.cat_file(f"{bucket}/warehouse/manifests/sale_date={DAY}.json"))
    assert manifest["rows_in"] == day.rows == manifest["rows_published"] + manifest["rows_quarantined"]
    assert manifest["quarantine_reasons"] == {k: v for k, v in day.injected.items() if k != "unknown_region"}
    assert first.manifest_url == f"{warehouse}/manifests/sale_date={DAY}.json"

    assert manifest["tables"] == first.tables == {n: table(warehouse, n, s3_endpoint).version() for n in TABLES}
    curated = read(warehouse, "curated", s3_endpoint)
    quarantine = read(warehouse, "quarantine", s3_endpoint)
    mart = read(warehouse, "marts", s3_endpoint)
    assert len(curated) == manifest["rows_published"] and curated["transaction_id"].is_unique
    assert len(quarantine) == manifest["rows_quarantined"]
    assert quarantine["reason"].value_counts().to_dict() == manifest["quarantine_reasons"]
    assert mart["transactions"].sum() == manifest["rows_published"]
    assert dict(zip(mart["region"], mart["revenue"], strict=True)) == {
        region: figures["revenue"] for region, figures in manifest["regions"].items()
    }
    CURATED_ROWS.validate(curated[list(CURATED_ROWS.columns)])
    QUARANTINE_ROWS.validate(quarantine.drop(columns=["sale_date"]))
    MART_ROWS.validate(mart.drop(columns=["sale_date"]))

    rejected = manifest["files_rejected"]
    assert len(rejected) == 2
    for entry in rejected:
        assert s3.cat_file(entry["quarantined_to"]) == s3.cat_file(entry["file"])

    results = s3.ls(f"{bucket}/warehouse/_prefect/results")
    extracted = [path for path in results if path.rsplit("/", 1)[-1].startswith("extract-")]
    # One per batch (one per Dask thread here): the four store files, and the verdicts on the two unreadable ones.
    batches = [pq.read_table(io.BytesIO(s3.cat_file(path))) for path in extracted]
    assert batches and sum(batch.num_rows for batch in batches) == 6_000
    assert all("transaction_id" in batch.column_names for batch in batches)
    verdicts = [
        verdict
        for batch in batches
        for verdict in json.loads(batch.schema.metadata[b"retail_etl.attrs"])["retail_etl_verdicts"]
    ]
    assert sorted(verdict["rows"] for verdict in verdicts) == [0, 0, 1_500, 1_500, 1_500, 1_500]
    assert sorted(verdict["reason"] or "" for verdict in verdicts)[-2:] == sorted(r["reason"] for r in rejected)
    aggregated = [path for path in results if not path.rsplit("/", 1)[-1].startswith("extract-")]
    assert aggregated, "small task results (region summaries, manifest URL) are persisted too"

    second = run_day(DAY, landing, warehouse)
    assert second.run_id != first.run_id
    for name in TABLES:
        current = file_names(table(warehouse, name, s3_endpoint))
        replaced = file_names(table(warehouse, name, s3_endpoint, first.tables[name]))
        assert current and all(file.startswith(second.run_id) for file in current), name
        assert replaced and all(file.startswith(first.run_id) for file in replaced), name
    on_s3 = {path.rsplit("/", 1)[-1] for path in s3.find(f"{bucket}/warehouse/curated") if path.endswith(".parquet")}
    assert {name.startswith(first.run_id) for name in on_s3} == {True, False}  # replaced files stay until vacuum
    assert len(read(warehouse, "curated", s3_endpoint)) == second.rows_published
    old = read(warehouse, "curated", s3_endpoint, version=first.tables["curated"])
    assert sorted(old["transaction_id"]) == sorted(curated["transaction_id"])
    assert not s3.find(f"{bucket}/warehouse/_staging")
