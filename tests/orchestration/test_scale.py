"""Days of thousands of landing files: published whole, figures equal to plain pandas over the same files."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

DAY = "2024-01-15"
HEADER = "transaction_id,sale_date,store_id,region,product,quantity,unit_price\n"
REGIONS = ("north", "south", "east", "west")


def write_day(landing: Path, stores: int, rows: int) -> list[Path]:
    """One file per store; every 97th row has quantity 0, and the last store repeats a transaction
    of the first store (a duplicate across files)."""
    folder = landing / "sales" / f"sale_date={DAY}"
    folder.mkdir(parents=True)
    paths = []
    for store in range(stores):
        lines = []
        for line in range(rows):
            serial = store * rows + line
            duplicate = (store, line) == (stores - 1, 1)
            quantity = 0 if serial % 97 == 0 and not duplicate else 1 + serial % 9
            tid = "T0-1" if duplicate else f"T{store}-{line}"
            lines.append(
                f"{tid},{DAY},S{store:05d},{REGIONS[store % 4]},p{serial % 13},{quantity},{1 + serial % 50}.{serial % 100:02d}\n"
            )
        path = folder / f"S{store:05d}.csv"
        path.write_text(HEADER + "".join(lines))
        paths.append(path)
    return paths


def recompute(paths: list[Path]) -> tuple[pd.DataFrame, int, int]:
    """Per-region figures with pandas straight from the landing files (in name order), and the
    rows read and quarantined."""
    body = b"".join(path.read_bytes().split(b"\n", 1)[1] for path in sorted(paths))
    rows = pd.read_csv(io.BytesIO(HEADER.encode() + body), dtype=str, keep_default_na=False)
    quantity, price = pd.to_numeric(rows["quantity"]), pd.to_numeric(rows["unit_price"])
    valid = rows[quantity > 0]
    clean = valid[~valid["transaction_id"].duplicated(keep="first")]
    total = (quantity[clean.index] * price[clean.index]).round(2)
    figures = (
        clean.assign(total=total, quantity=quantity[clean.index])
        .groupby("region")
        .agg(transactions=("total", "size"), revenue=("total", "sum"), units=("quantity", "sum"))
    )
    return figures, len(rows), len(rows) - len(clean)


@pytest.mark.slow
@pytest.mark.parametrize("stores, rows", [(5_000, 40), (20_000, 3)], ids=["5000-store-files", "20000-tiny-files"])
def test_a_day_of_thousands_of_files_is_published_whole(run_day, tmp_dirs, stores, rows):
    landing, warehouse = tmp_dirs
    paths = write_day(landing, stores, rows)
    manifest = run_day(DAY, landing, warehouse)
    expected, rows_in, quarantined = recompute(paths)

    assert manifest.rows_in == rows_in == stores * rows
    assert manifest.rows_in == manifest.rows_published + manifest.rows_quarantined
    assert manifest.rows_quarantined == quarantined
    assert manifest.quarantine_reasons == {"bad_quantity": quarantined - 1, "duplicate_transaction": 1}
    assert len(manifest.files_accepted) == stores and not manifest.files_rejected
    assert [f.file for f in manifest.files_accepted] == [str(p) for p in sorted(paths)]
    assert {region: f.rows for region, f in manifest.regions.items()} == expected["transactions"].to_dict()
    assert {region: f.revenue for region, f in manifest.regions.items()} == pytest.approx(
        expected["revenue"].round(2).to_dict()
    )
    mart = DeltaTable(str(warehouse / "marts" / "region_daily")).to_pandas().set_index("region")
    assert mart["units"].to_dict() == expected["units"].to_dict()
    curated = DeltaTable(str(warehouse / "curated" / "sales")).to_pandas(columns=["transaction_id"])
    assert len(curated) == manifest.rows_published and curated["transaction_id"].is_unique
    # Memory is bounded by batches: no task holds more than RETAIL_ETL_BATCH_FILES files (500) at once.
    assert validate_runs(manifest.run_id) == -(-stores // 500)


def validate_runs(flow_run_id: str) -> int:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    return sum(run.name.startswith("validate-files") and run.state.is_completed() for run in runs)
