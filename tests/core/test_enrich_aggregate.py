"""Enrichment and per-region aggregation (pure functions)."""

from __future__ import annotations

import pandas as pd

from retail_etl.contract.columns import MART_COLUMNS
from retail_etl.core.aggregate import RegionSummary, mart_frame, region_summary
from retail_etl.core.enrich import enrich
from retail_etl.core.numbers import price_nanos


def priced(quantities: list[int], prices: list[float]) -> pd.DataFrame:
    """Clean rows as validation hands them over: the float price and its exact value."""
    text = pd.Series([str(price) for price in prices], dtype="str")
    return pd.DataFrame(
        {"quantity": pd.Series(quantities, dtype="int64"), "unit_price": pd.Series(prices, dtype="float64")}
    ).assign(unit_price_nanos=price_nanos(text))


def test_ticket_size_boundaries():
    rows = priced([1, 1, 1, 1, 1], [0.01, 99.99, 100.0, 499.99, 500.0])
    enriched = enrich(rows)
    assert enriched["ticket_size"].astype(str).tolist() == ["small", "small", "medium", "medium", "large"]


def test_total_is_quantity_times_price_rounded_to_cents():
    enriched = enrich(priced([3, 7], [0.1, 19.99]))
    assert enriched["total"].tolist() == [0.3, 139.93]


def test_region_summary_counts_and_averages():
    rows = enrich(priced([1, 2, 10], [50.0, 100.0, 60.0]))
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
    empty = enrich(priced([], []))
    assert region_summary("east", empty).transactions == 0


def test_mart_frame_is_sorted_with_contract_columns():
    mart = mart_frame(
        [
            region_summary("west", enrich(priced([1], [5.0]))),
            region_summary("east", enrich(priced([2], [5.0]))),
        ]
    )
    assert list(mart.columns) == list(MART_COLUMNS)
    assert mart["region"].tolist() == ["east", "west"]
    assert mart["revenue"].tolist() == [10.0, 5.0]


def test_totals_are_exact_decimals_rounded_half_up():
    enriched = enrich(priced([3, 3, 1, 10_000], [0.335, 1.005, 0.005, 99_999.99]))
    assert enriched["total"].tolist() == [1.01, 3.02, 0.01, 999_999_900.0]
    assert enrich(priced([1], [99.995]))["ticket_size"].astype(str).tolist() == ["medium"]  # 100.00 once rounded


def test_revenue_sums_cents_exactly():
    rows = enrich(priced([1] * 10, [0.1] * 10))
    assert region_summary("north", rows).revenue == 1.0
