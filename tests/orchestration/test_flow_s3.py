"""The same flow against a real S3 API (moto's server on 127.0.0.1), results persisted in S3."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow.parquet as pq
import s3fs

from retail_etl.synth.generate import generate_day

DAY = "2024-01-15"


def fs(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)


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

    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_endpoint, "skip_instance_cache": True}
    curated = pd.read_parquet(f"{warehouse}/curated/sales", storage_options=options)
    assert len(curated) == manifest["rows_published"]

    rejected = manifest["files_rejected"]
    assert len(rejected) == 2
    for entry in rejected:
        assert s3.cat_file(entry["quarantined_to"]) == s3.cat_file(entry["file"])

    results = s3.ls(f"{bucket}/warehouse/_prefect/results")
    extracted = [path for path in results if path.rsplit("/", 1)[-1].startswith("extract-")]
    assert len(extracted) == 6  # four store files, and the verdicts on the two unreadable ones
    tables = [pq.read_table(io.BytesIO(s3.cat_file(path))) for path in extracted]
    assert sorted(table.num_rows for table in tables) == [0, 0, 1_500, 1_500, 1_500, 1_500]
    assert all("transaction_id" in table.column_names for table in tables)
    aggregated = [path for path in results if not path.rsplit("/", 1)[-1].startswith("extract-")]
    assert aggregated, "small task results (region summaries, manifest URL) are persisted too"

    second = run_day(DAY, landing, warehouse)
    assert second.run_id != first.run_id
    names = {path.rsplit("/", 1)[-1] for path in s3.find(f"{bucket}/warehouse/curated")}
    assert names and all(name.startswith(second.run_id) for name in names)
    assert len(pd.read_parquet(f"{warehouse}/curated/sales", storage_options=options)) == second.rows_published
    assert not s3.find(f"{bucket}/warehouse/_staging")
