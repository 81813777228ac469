"""Publication of a day into the Delta tables: the day is replaced whole, in every table, or not at all."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from retail_etl.contract.columns import QUARANTINE_COLUMNS
from retail_etl.contract.manifest import Manifest, RegionFigures
from retail_etl.core.aggregate import mart_frame, region_summary
from retail_etl.core.enrich import enrich
from retail_etl.errors import NothingPublishedError
from retail_etl.io.delta import TABLES, table_uri
from retail_etl.io.publish import COMMIT_ORDER, DayPublication, rollback_day

DAY = "2024-01-15"


def rows(run_id: str, regions: list[str], price: float = 2.0) -> pd.DataFrame:
    """Enriched curated rows, one per region entry, with transaction ids that name the run."""
    return enrich(
        pd.DataFrame(
            {
                "transaction_id": [f"{run_id}-t{i}" for i in range(len(regions))],
                "store_id": "S1",
                "product": "tea",
                "region": regions,
                "quantity": 1,
                "unit_price": price,
            }
        )
    )


def quarantine_rows(run_id: str, count: int) -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series([None] * count, dtype="str") for column in QUARANTINE_COLUMNS})
    frame["transaction_id"] = [f"{run_id}-q{i}" for i in range(count)]
    frame["reason"] = "bad_price"
    frame["source_file"] = pd.Categorical([f"/landing/{run_id}.csv"] * count)
    frame["source_line"] = range(2, count + 2)
    return frame


def mart(enriched: pd.DataFrame) -> pd.DataFrame:
    return mart_frame(
        [region_summary(str(region), part) for region, part in enriched.groupby("region", observed=True, sort=True)]
    )


def manifest_of(run_id: str, enriched: pd.DataFrame, quarantined: int = 0, sale_date: str = DAY) -> Manifest:
    summary = mart(enriched)
    return Manifest(
        run_id=run_id,
        sale_date=sale_date,
        rows_in=len(enriched) + quarantined,
        rows_published=len(enriched),
        rows_quarantined=quarantined,
        quarantine_reasons={"bad_price": quarantined} if quarantined else {},
        regions={row.region: RegionFigures(rows=row.transactions, revenue=row.revenue) for row in summary.itertuples()},
        revenue=round(float(enriched["total"].sum()), 2),
        retail_etl_version="test",
    )


def publish(
    warehouse: Path,
    run_id: str,
    regions: list[str],
    price: float = 2.0,
    quarantined: int = 0,
    sale_date: str = DAY,
    on_commit=None,
) -> Manifest:
    """What a run does: data files from its tasks, the mart, then one commit per table and the manifest."""
    day = DayPublication(str(warehouse), None, sale_date, run_id)
    enriched = rows(run_id, regions, price)
    files = {
        "curated": day.write_curated(enriched, "b0000"),
        "quarantine": day.write_quarantine(quarantine_rows(run_id, quarantined), "f000000"),
        "marts": day.write_mart(mart(enriched)),
    }
    published = day.commit(files, manifest_of(run_id, enriched, quarantined, sale_date), on_commit=on_commit)
    day.cleanup()
    return published


def uri(warehouse: Path, table: str) -> str:
    return table_uri(str(warehouse), TABLES[table])


def read(warehouse: Path, table: str, sale_date: str = DAY, version: int | None = None) -> pd.DataFrame:
    frame = DeltaTable(uri(warehouse, table), version=version).to_pandas(filters=[("sale_date", "=", sale_date)])
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


def stored_manifest(warehouse: Path, sale_date: str = DAY) -> dict:
    return json.loads((warehouse / "manifests" / f"sale_date={sale_date}.json").read_text())


def test_commit_replaces_exactly_the_day(tmp_path):
    first = publish(tmp_path, "run1", ["north", "south"], quarantined=2)
    other = publish(tmp_path, "other", ["east", "west"], sale_date="2024-01-16")
    other_rows = read(tmp_path, "curated", "2024-01-16")
    second = publish(tmp_path, "run2", ["north"], price=3.0)

    curated = read(tmp_path, "curated")
    assert curated["transaction_id"].tolist() == ["run2-t0"]
    assert curated["region"].tolist() == ["north"] and curated["unit_price"].tolist() == [3.0]
    assert read(tmp_path, "quarantine").empty  # run2 quarantined nothing: run1's rows left with the day
    assert read(tmp_path, "marts")[["region", "revenue"]].values.tolist() == [["north", 3.0]]
    pd.testing.assert_frame_equal(read(tmp_path, "curated", "2024-01-16"), other_rows)
    assert read(tmp_path, "marts", "2024-01-16")["region"].tolist() == ["east", "west"]

    # The replaced day is still there by time travel, at the version the first manifest names.
    old = read(tmp_path, "curated", version=first.tables["curated"])
    assert old["transaction_id"].tolist() == ["run1-t0", "run1-t1"]
    assert read(tmp_path, "quarantine", version=first.tables["quarantine"])["transaction_id"].tolist() == [
        "run1-q0",
        "run1-q1",
    ]
    assert read(tmp_path, "marts", version=first.tables["marts"])["region"].tolist() == ["north", "south"]

    stored = stored_manifest(tmp_path)
    assert stored["run_id"] == "run2"
    assert stored["tables"] == second.tables == {name: DeltaTable(uri(tmp_path, name)).version() for name in TABLES}
    assert second.tables["curated"] > other.tables["curated"] > first.tables["curated"]
    assert second.manifest_url == str(tmp_path / "manifests" / f"sale_date={DAY}.json")
    assert json.loads((tmp_path / "manifests" / "_runs" / f"sale_date={DAY}" / "run1.json").read_text())["run_id"] == (
        "run1"
    )


def test_commit_order_is_curated_quarantine_marts(tmp_path):
    seen: list[tuple[str, int]] = []
    publish(tmp_path, "run1", ["north"], on_commit=lambda table, version: seen.append((table, version)))
    assert [table for table, _ in seen] == list(COMMIT_ORDER) == ["curated", "quarantine", "marts"]
    assert dict(seen) == stored_manifest(tmp_path)["tables"]


REGIONS = ["north/east", "a=b", "new york", "Zürich", "東京", "50%"]


def test_region_names_round_trip_through_pandas_and_polars(tmp_path):
    publish(tmp_path, "r", REGIONS)

    # One folder per region right under the day ('/' did not nest, '=' did not split the key).
    day_folder = tmp_path / "curated" / "sales" / f"sale_date={DAY}"
    assert sorted(p.name for p in day_folder.iterdir()) == sorted(f"region={quote(r, safe='')}" for r in REGIONS)

    curated = uri(tmp_path, "curated")
    assert sorted(DeltaTable(curated).to_pandas()["region"]) == sorted(REGIONS)
    assert sorted(pl.read_delta(curated)["region"].to_list()) == sorted(REGIONS)
    for region in REGIONS:
        (row,) = pl.scan_delta(curated).filter(pl.col("region") == region).collect().to_dicts()
        assert row["transaction_id"] == f"r-t{REGIONS.index(region)}" and row["sale_date"] == DAY
        only = DeltaTable(curated).to_pandas(filters=[("region", "=", region)])
        assert only["transaction_id"].tolist() == [f"r-t{REGIONS.index(region)}"]
    assert sorted(pl.read_delta(uri(tmp_path, "marts"))["region"].to_list()) == sorted(REGIONS)
    assert sorted(stored_manifest(tmp_path)["regions"]) == sorted(REGIONS)


def test_region_names_survive_a_rollback(tmp_path):
    publish(tmp_path, "run1", REGIONS, price=2.0)
    publish(tmp_path, "run2", REGIONS, price=5.0)
    rollback_day(str(tmp_path), None, DAY)
    restored = pl.read_delta(uri(tmp_path, "curated")).sort("region")
    assert restored["region"].to_list() == sorted(REGIONS)
    assert set(restored["unit_price"].to_list()) == {2.0}


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", ".hidden"])
def test_run_id_must_be_a_path_segment(tmp_path, run_id):
    with pytest.raises(ValueError, match="plain path segment"):
        DayPublication(str(tmp_path), None, DAY, run_id)


def test_candidates_round_trip_keeps_original_spellings(tmp_path):
    day = DayPublication(str(tmp_path), None, DAY, "r")
    rows = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "sale_date": [DAY, " 2024-01-15", DAY],
            "store_id": "S1",
            "region": "north",
            "product": "tea",
            "quantity": "1",
            "unit_price": "2",
            "source_line": [2, 3, 4],
            "raw_line": pd.Series([None] * 3, dtype="str"),
            "source_file": "S1.csv",
            **PARSED,
        }
    )
    day.write_candidates(rows, 0, 2)
    back = pd.concat([day.read_candidates(b) for b in range(2)]).sort_values("source_line")
    assert back["sale_date"].tolist() == [DAY, " 2024-01-15", DAY]
    assert back["transaction_id"].tolist() == ["a", "b", "c"] and back["raw_line"].isna().all()


#: What the field checks parse from quantity "1" and unit_price "2.00" (carried with candidates).
PARSED = {"quantity_value": 1, "unit_price_nanos": 2_000_000_000, "unit_price_value": 2.0}


def candidates(run_id: str, count: int, files: int = 1) -> pd.DataFrame:
    """Rows as they leave the field checks: raw strings, spread over `files` landing files."""
    return pd.DataFrame(
        {
            "transaction_id": [f"{run_id}-t{i}" for i in range(count)],
            "sale_date": DAY,
            "store_id": "S1",
            "region": "north",
            "product": "tea",
            "quantity": "1",
            "unit_price": "2.00",
            "source_line": range(2, count + 2),
            "raw_line": pd.Series([None] * count, dtype="str"),
            "source_file": pd.Categorical([f"/landing/{run_id}-{i % files:05d}.csv" for i in range(count)]),
            **PARSED,
        }
    )


@pytest.mark.parametrize("sizes", [(100, 200), (200, 100), (1, 300)])
def test_candidates_of_small_and_large_batches_read_back_together(tmp_path, sizes):
    """A batch of more than 127 files gave int16 Categorical codes, a smaller one int8: one schema now."""
    day = DayPublication(str(tmp_path), None, DAY, "r")
    batches = [candidates(f"b{index}", 2 * files, files=files) for index, files in enumerate(sizes)]
    for index, batch in enumerate(batches):
        day.write_candidates(batch, index * 1000, 3)
    back = pd.concat([day.read_candidates(b) for b in range(3)], ignore_index=True)
    assert sorted(back["transaction_id"]) == sorted(pd.concat(batches)["transaction_id"])
    assert back["source_file"].nunique() == sum(sizes)


def test_quarantine_files_of_small_and_large_batches_have_the_table_schema(tmp_path):
    day = DayPublication(str(tmp_path), None, DAY, "r")
    written = []
    for part, files in (("f000000", 100), ("f000100", 200)):
        frame = quarantine_rows(part, 2 * files)
        frame["source_file"] = pd.Categorical([f"/landing/{i % files:05d}.csv" for i in range(2 * files)])
        written += day.write_quarantine(frame, part)
    schemas = {pq.read_schema(tmp_path / TABLES["quarantine"].path / f.path).remove_metadata() for f in written}
    assert schemas == {TABLES["quarantine"].file_schema}


def test_cleanup_removes_only_this_runs_scratch(tmp_path):
    publish(tmp_path, "run1", ["north"])
    published = read(tmp_path, "curated")
    other = DayPublication(str(tmp_path), None, DAY, "other")
    other.write_candidates(candidates("other", 1), 0, 1)

    day = DayPublication(str(tmp_path), None, DAY, "run2")
    day.write_candidates(candidates("run2", 1), 0, 2)
    written = day.write_curated(rows("run2", ["south"]), "b0000")
    kept = Path(day.write_rejected_file("bad.csv", b"\xff\xfe"))
    assert (tmp_path / "_staging" / "run2").is_dir()

    day.cleanup()
    assert sorted(p.name for p in (tmp_path / "_staging").iterdir()) == ["other"]
    assert len(other.read_candidates(0)) == 1
    assert kept.read_bytes() == b"\xff\xfe"
    assert (tmp_path / "curated" / "sales" / written[0].path).is_file()  # written, never committed: left for vacuum
    pd.testing.assert_frame_equal(read(tmp_path, "curated"), published)
    assert stored_manifest(tmp_path)["run_id"] == "run1"


def test_rollback_returns_the_previous_run_in_every_table(tmp_path):
    first = publish(tmp_path, "run1", ["north", "south"], price=2.0, quarantined=3)
    before = {table: read(tmp_path, table) for table in TABLES}
    second = publish(tmp_path, "run2", ["east"], price=7.0, quarantined=1)
    assert read(tmp_path, "curated")["transaction_id"].tolist() == ["run2-t0"]

    restored = rollback_day(str(tmp_path), None, DAY)

    for table in TABLES:
        pd.testing.assert_frame_equal(read(tmp_path, table), before[table], check_like=True)
    current = {name: DeltaTable(uri(tmp_path, name)).version() for name in TABLES}
    assert restored.tables == current
    assert all(current[name] > second.tables[name] for name in TABLES)
    assert restored.model_dump(exclude={"tables"}) == first.model_dump(exclude={"tables"})
    stored = stored_manifest(tmp_path)
    assert stored == restored.model_dump(mode="json")
    assert stored["run_id"] == "run1" and stored["rows_quarantined"] == 3 and stored["tables"] == current
    # The rolled-back run is still one rollback away.
    assert read(tmp_path, "curated", version=second.tables["curated"])["transaction_id"].tolist() == ["run2-t0"]
    again = rollback_day(str(tmp_path), None, DAY)
    assert again.run_id == "run2"
    assert read(tmp_path, "curated")["transaction_id"].tolist() == ["run2-t0"]


def test_rollback_without_an_earlier_run_raises(tmp_path):
    with pytest.raises(NothingPublishedError, match="never published"):
        rollback_day(str(tmp_path), None, DAY)
    publish(tmp_path, "run1", ["north"])
    publish(tmp_path, "other-day", ["north"], sale_date="2024-01-16")
    with pytest.raises(NothingPublishedError, match="no earlier publication"):
        rollback_day(str(tmp_path), None, DAY)
    assert stored_manifest(tmp_path)["run_id"] == "run1"
    assert read(tmp_path, "curated")["transaction_id"].tolist() == ["run1-t0"]


@pytest.mark.parametrize("failing", ["quarantine", "marts", "manifest"])
def test_a_failure_between_commits_puts_the_old_day_back_in_every_table(tmp_path, monkeypatch, failing):
    publish(tmp_path, "run1", ["north", "south"], price=2.0, quarantined=3)
    before = {table: read(tmp_path, table) for table in TABLES}
    from retail_etl.io import publish as publish_module

    real_commit, real_manifest = publish_module.commit_day, publish_module.write_manifest

    def commit_or_fail(warehouse, options, table, *args, **kwargs):
        if table.name == failing:
            raise OSError(f"store refused the {failing} commit")
        return real_commit(warehouse, options, table, *args, **kwargs)

    def manifest_or_fail(root, manifest):
        if failing == "manifest":
            raise OSError("store refused the manifest")
        return real_manifest(root, manifest)

    monkeypatch.setattr(publish_module, "commit_day", commit_or_fail)
    monkeypatch.setattr(publish_module, "write_manifest", manifest_or_fail)
    with pytest.raises(OSError, match="store refused"):
        publish(tmp_path, "run2", ["east"], price=7.0, quarantined=1)
    monkeypatch.undo()

    for table in TABLES:
        pd.testing.assert_frame_equal(read(tmp_path, table), before[table], check_like=True)
    assert stored_manifest(tmp_path)["run_id"] == "run1"
    # run2 never finished, so it is not a rollback target; run1 has no earlier run either.
    with pytest.raises(NothingPublishedError, match="no earlier publication"):
        rollback_day(str(tmp_path), None, DAY)
    publish(tmp_path, "run3", ["west"], price=5.0)
    assert rollback_day(str(tmp_path), None, DAY).run_id == "run1"
