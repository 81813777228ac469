"""Enrichment and per-region aggregation (pure functions)."""

from __future__ import annotations

import pandas as pd

from retail_etl.contract.columns import MART_COLUMNS
from retail_etl.core.aggregate import RegionSummary, mart_frame, region_summary
from retail_etl.core.enrich import enrich


def test_ticket_size_boundaries():
    rows = pd.DataFrame({"quantity": [1, 1, 1, 1, 1], "unit_price": [0.01, 99.99, 100.0, 499.99, 500.0]})
    enriched = enrich(rows)
    assert enriched["ticket_size"].astype(str).tolist() == ["small", "small", "medium", "medium", "large"]


def test_total_is_quantity_times_price_rounded_to_cents():
    enriched = enrich(pd.DataFrame({"quantity": [3, 7], "unit_price": [0.1, 19.99]}))
    assert enriched["total"].tolist() == [0.3, 139.93]


def test_region_summary_counts_and_averages():
    rows = enrich(pd.DataFrame({"quantity": [1, 2, 10], "unit_price": [50.0, 100.0, 60.0]}))
    summary = region_summary("north", rows)
    assert summary == RegionSummary(
        region="north",
        revenue=850.0,
        units=13,
        transactions=3,
        avg_ticket=283.33,
        small_tickets=1,
        medium_tickets=1,
        large_tickets=1,
    )


def test_region_summary_of_no_rows():
    empty = enrich(pd.DataFrame({"quantity": pd.Series(dtype="int64"), "unit_price": pd.Series(dtype="float64")}))
    assert region_summary("east", empty).transactions == 0


def test_mart_frame_is_sorted_with_contract_columns():
    mart = mart_frame(
        [
            region_summary("west", enrich(pd.DataFrame({"quantity": [1], "unit_price": [5.0]}))),
            region_summary("east", enrich(pd.DataFrame({"quantity": [2], "unit_price": [5.0]}))),
        ]
    )
    assert list(mart.columns) == list(MART_COLUMNS)
    assert mart["region"].tolist() == ["east", "west"]
    assert mart["revenue"].tolist() == [10.0, 5.0]
