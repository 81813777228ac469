"""Row validation: one reason per bad row, chosen by priority; nothing lost."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from retail_etl.contract.columns import LANDING_COLUMNS, QUARANTINE_COLUMNS
from retail_etl.core.checks import Rules, row_reasons, split_rows

RUN = date(2024, 1, 15)
GOOD = {
    "transaction_id": "t",
    "sale_date": "2024-01-15",
    "store_id": "S001",
    "region": "north",
    "product": "tea",
    "quantity": "2",
    "unit_price": "3.50",
}


def frame(*rows: dict, raw_lines: list | None = None) -> pd.DataFrame:
    records = [{**GOOD, "transaction_id": f"t{index}", **row} for index, row in enumerate(rows)]
    data = pd.DataFrame(records, columns=list(LANDING_COLUMNS)).astype("str")
    data["source_line"] = range(2, len(records) + 2)
    data["raw_line"] = pd.Series(raw_lines or [None] * len(records), dtype="str")
    data["source_file"] = "S001.csv"
    return data


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"store_id": ""}, "missing_field"),
        ({"product": "   "}, "missing_field"),
        ({"transaction_id": ""}, "missing_field"),
        ({"sale_date": "2024-13-45"}, "bad_date"),
        ({"sale_date": "15/01/2024"}, "bad_date"),
        ({"sale_date": "2024-02-30"}, "bad_date"),
        ({"sale_date": "2024-01-14"}, "date_mismatch"),
        ({"quantity": "0"}, "bad_quantity"),
        ({"quantity": "-3"}, "bad_quantity"),
        ({"quantity": "2.5"}, "bad_quantity"),
        ({"quantity": "three"}, "bad_quantity"),
        ({"quantity": "10001"}, "bad_quantity"),
        ({"unit_price": "0"}, "bad_price"),
        ({"unit_price": "-1"}, "bad_price"),
        ({"unit_price": "free"}, "bad_price"),
        ({"unit_price": "NaN"}, "bad_price"),
        ({"unit_price": "inf"}, "bad_price"),
        ({"unit_price": "100000.01"}, "bad_price"),
        ({"quantity": "2.00000000000000001"}, "bad_quantity"),
        ({"quantity": "10000.0000000000001"}, "bad_quantity"),
        ({"quantity": "1e3"}, "bad_quantity"),
        ({"quantity": "99999999999999999999999"}, "bad_quantity"),
        ({"unit_price": "100000.000000000001"}, "bad_price"),
        ({"unit_price": "1e2"}, "bad_price"),
        ({"unit_price": "0.0000000001"}, "bad_price"),
        ({"unit_price": "1,50"}, "bad_price"),
        ({"region": "r" * 65}, "bad_region"),
        ({"region": "é" * 33}, "bad_region"),
    ],
)
def test_each_reason(row, reason):
    reasons = row_reasons(frame(GOOD, row), Rules(run_date=RUN))
    assert reasons.isna().tolist() == [True, False]
    assert reasons.iloc[1] == reason


def test_limits_are_inclusive_and_whitespace_is_ignored():
    data = frame({"quantity": " 10000 ", "unit_price": "100000"}, {"quantity": "3.0", "region": " south "})
    clean, quarantine = split_rows(data, Rules(run_date=RUN))
    assert len(quarantine) == 0
    assert clean["quantity"].tolist() == [10000, 3]
    assert clean["region"].tolist() == ["north", "south"]


def test_limits_are_configurable():
    reasons = row_reasons(
        frame({"quantity": "50"}, {"unit_price": "20"}), Rules(RUN, max_quantity=10, max_unit_price=10)
    )
    assert reasons.tolist() == ["bad_quantity", "bad_price"]


def test_regions_checked_only_when_configured():
    data = frame({"region": "atlantis"})
    assert row_reasons(data, Rules(RUN)).isna().all()
    assert row_reasons(data, Rules(RUN, regions=frozenset({"north"}))).tolist() == ["unknown_region"]


def test_priority_picks_the_first_reason():
    reasons = row_reasons(
        frame(
            {"store_id": "", "quantity": "-1", "unit_price": "x"},
            {"sale_date": "2024-01-14", "quantity": "0"},
            {"quantity": "0", "unit_price": "0"},
        ),
        Rules(RUN),
    )
    assert reasons.tolist() == ["missing_field", "date_mismatch", "bad_quantity"]


def test_malformed_rows_keep_their_raw_line():
    data = frame(GOOD, dict.fromkeys(GOOD), raw_lines=[None, "t1,2024-01-15,S001"])
    clean, quarantine = split_rows(data, Rules(RUN))
    assert len(clean) == 1
    assert quarantine[["reason", "raw_line", "source_line"]].values.tolist() == [
        ["malformed_row", "t1,2024-01-15,S001", 3]
    ]


def test_first_valid_duplicate_wins_even_after_an_invalid_one():
    data = frame(
        {"transaction_id": "dup", "unit_price": "bad"},
        {"transaction_id": "dup", "unit_price": "1"},
        {"transaction_id": "dup", "unit_price": "2"},
        {"transaction_id": " dup ", "unit_price": "3"},
    )
    clean, quarantine = split_rows(data, Rules(RUN))
    assert clean["unit_price"].tolist() == [1.0]
    assert quarantine["reason"].tolist() == ["bad_price", "duplicate_transaction", "duplicate_transaction"]


def test_quarantine_keeps_original_strings_and_conserves_rows():
    data = frame(GOOD, {"quantity": " -2 "}, {"unit_price": "1e9"})
    clean, quarantine = split_rows(data, Rules(RUN))
    assert len(clean) + len(quarantine) == len(data)
    assert list(quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert quarantine["quantity"].tolist() == [" -2 ", "2"]
    assert quarantine["source_file"].tolist() == ["S001.csv", "S001.csv"]
    assert quarantine["source_line"].tolist() == [3, 4]


def test_clean_rows_are_typed():
    clean, _ = split_rows(frame(GOOD), Rules(RUN))
    assert str(clean["quantity"].dtype) == "int64"
    assert str(clean["unit_price"].dtype) == "float64"
    assert clean["sale_date"].tolist() == [RUN]


def test_empty_input():
    clean, quarantine = split_rows(frame(GOOD).iloc[:0], Rules(RUN))
    assert len(clean) == len(quarantine) == 0


def test_rules_reject_nonsense():
    with pytest.raises(ValueError):
        Rules(RUN, max_quantity=0)
    with pytest.raises(ValueError):
        Rules(RUN, regions=frozenset())


def test_exact_numbers_at_the_limits_pass():
    data = frame(
        {"quantity": "+4", "unit_price": "100000.000000000"},
        {"quantity": "4.000", "unit_price": "0.000000001"},
        {"region": "é" * 32, "unit_price": ".5"},
    )
    clean, quarantine = split_rows(data, Rules(run_date=RUN))
    assert len(quarantine) == 0
    assert clean["quantity"].tolist() == [4, 4, 2]
    assert clean["unit_price"].tolist() == [100000.0, 1e-09, 0.5]
    assert clean["unit_price_nanos"].tolist() == [100_000 * 10**9, 1, 500_000_000]


def test_rules_refuse_limits_that_cannot_be_checked_exactly():
    with pytest.raises(ValueError, match="max_unit_price"):
        Rules(RUN, max_unit_price=1e9)
    with pytest.raises(ValueError, match="max_quantity"):
        Rules(RUN, max_quantity=0)
