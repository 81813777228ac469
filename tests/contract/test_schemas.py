"""The row schemas name exactly the contract's columns, and refuse rows that break it."""

from __future__ import annotations

import pandas as pd
import pytest
from pandera.errors import SchemaError

from retail_etl.contract.columns import CURATED_FILE_COLUMNS, LANDING_COLUMNS, MART_COLUMNS, QUARANTINE_COLUMNS
from retail_etl.contract.schemas import CURATED_ROWS, MART_ROWS, QUARANTINE_ROWS, RAW_ROWS
from retail_etl.core.enrich import enrich


def test_schemas_name_the_contract_columns():
    assert tuple(CURATED_ROWS.columns) == CURATED_FILE_COLUMNS
    assert tuple(MART_ROWS.columns) == MART_COLUMNS
    assert set(QUARANTINE_ROWS.columns) == set(QUARANTINE_COLUMNS)
    assert tuple(RAW_ROWS.columns) == (*LANDING_COLUMNS, "source_line", "raw_line")


def curated(**changes) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "store_id": "S1",
            "product": "tea",
            "quantity": [1, 2],
            "unit_price": [2.5, 300.0],
            "unit_price_nanos": [2_500_000_000, 300_000_000_000],
        }
        | changes
    )
    return enrich(rows)[list(CURATED_FILE_COLUMNS)].astype({"ticket_size": "str"})


def test_curated_rows_pass_and_bad_ones_fail():
    CURATED_ROWS.validate(curated())
    with pytest.raises(SchemaError):
        CURATED_ROWS.validate(curated(transaction_id=["t1", "t1"]))
    with pytest.raises(SchemaError):
        CURATED_ROWS.validate(curated(quantity=[0, 2]))


def test_quarantine_reason_must_be_in_the_vocabulary():
    row = {column: pd.Series(["x"], dtype="str") for column in QUARANTINE_COLUMNS}
    row["source_line"] = pd.Series([2], dtype="int64")
    row["reason"] = pd.Series(["bad_price"], dtype="str")
    QUARANTINE_ROWS.validate(pd.DataFrame(row))
    row["reason"] = pd.Series(["looks_odd"], dtype="str")
    with pytest.raises(SchemaError):
        QUARANTINE_ROWS.validate(pd.DataFrame(row))
