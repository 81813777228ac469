"""Staged publishing: a day is replaced whole or not at all."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from retail_etl.contract.layout import CURATED, MARTS
from retail_etl.contract.manifest import Manifest
from retail_etl.core.enrich import enrich
from retail_etl.io import publish as publish_module
from retail_etl.io import storage
from retail_etl.io.publish import StagedDay
from retail_etl.io.storage import location


def manifest(run_id: str) -> Manifest:
    return Manifest(
        run_id=run_id,
        sale_date="2024-01-15",
        rows_in=0,
        rows_published=0,
        rows_quarantined=0,
        revenue=0.0,
        retail_etl_version="test",
    )


def stored_run_id(root) -> str:
    return json.loads((root / "manifests" / "sale_date=2024-01-15.json").read_text())["run_id"]


def rows(regions: list[str]) -> pd.DataFrame:
    return enrich(
        pd.DataFrame(
            {
                "transaction_id": [f"t{i}" for i in range(len(regions))],
                "store_id": "S1",
                "product": "tea",
                "region": regions,
                "quantity": 1,
                "unit_price": 2.0,
            }
        )
    )


def publish(root, run_id: str, regions: list[str]) -> StagedDay:
    day = StagedDay(location(root), "2024-01-15", run_id)
    day.write_curated(rows(regions))
    day.write_mart(pd.DataFrame({"region": sorted(set(regions))}))
    return day


def published(root) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.parquet") if not str(p.relative_to(root)).startswith("_")
    )


def test_commit_replaces_exactly(tmp_path):
    publish(tmp_path, "run1", ["north", "south"]).commit(manifest("run1"))
    publish(tmp_path, "run2", ["north"]).commit(manifest("run2"))
    assert published(tmp_path) == [
        "curated/sales/sale_date=2024-01-15/region=north/run2.parquet",
        "marts/region_daily/sale_date=2024-01-15/run2.parquet",
    ]
    assert stored_run_id(tmp_path) == "run2"
    assert not list((tmp_path / "_staging").iterdir())


def test_failed_commit_rolls_back_and_can_be_retried(tmp_path, monkeypatch):
    publish(tmp_path, "run1", ["north", "south"]).commit(manifest("run1"))
    before = published(tmp_path)
    day = publish(tmp_path, "run2", ["east"])

    real_move = storage.move_tree

    def failing_move(fs, source, target):
        if source == day.staged(MARTS):
            raise OSError("storage went away")
        real_move(fs, source, target)

    monkeypatch.setattr(publish_module, "move_tree", failing_move)
    with pytest.raises(OSError):
        day.commit(manifest("run2"))
    assert published(tmp_path) == before
    assert stored_run_id(tmp_path) == "run1"

    monkeypatch.setattr(publish_module, "move_tree", real_move)
    day.commit(manifest("run2"))
    assert [p for p in published(tmp_path) if p.startswith(CURATED)] == [
        "curated/sales/sale_date=2024-01-15/region=east/run2.parquet"
    ]


def test_region_names_are_escaped_in_paths(tmp_path):
    day = StagedDay(location(tmp_path), "2024-01-15", "r")
    paths = day.write_curated(rows(["north/east", "a=b"]))
    assert sorted(p.rsplit("/", 1)[-1] for p in paths.values()) == ["region=a%3Db", "region=north%2Feast"]
    day.commit(manifest("r"))
    read = pd.read_parquet(tmp_path / "curated" / "sales")
    assert sorted(read["region"].astype(str)) == ["a=b", "north/east"]


def test_run_id_must_be_a_path_segment(tmp_path):
    with pytest.raises(ValueError):
        StagedDay(location(tmp_path), "2024-01-15", "../x")


def test_candidates_round_trip_keeps_original_spellings(tmp_path):
    day = StagedDay(location(tmp_path), "2024-01-15", "r")
    rows = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "sale_date": ["2024-01-15", " 2024-01-15", "2024-01-15"],
            "store_id": "S1",
            "region": "north",
            "product": "tea",
            "quantity": "1",
            "unit_price": "2",
            "source_line": [2, 3, 4],
            "raw_line": pd.Series([None] * 3, dtype="str"),
            "source_file": "S1.csv",
        }
    )
    day.write_candidates(rows, 0, 2)
    back = pd.concat([day.read_candidates(b) for b in range(2)]).sort_values("source_line")
    assert back["sale_date"].tolist() == ["2024-01-15", " 2024-01-15", "2024-01-15"]
    assert back["transaction_id"].tolist() == ["a", "b", "c"] and back["raw_line"].isna().all()
