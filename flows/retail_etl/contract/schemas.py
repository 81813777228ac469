"""Row schemas (pandera) of what the pipeline reads and publishes, one per kind of row.

They state the published contract in code: the tests validate every output file against
them, and readers can do the same. Partition columns (`sale_date`, `region` of curated
rows, `sale_date` of the others) live in the folder names, not in the files.

>>> import pandas as pd
>>> mart = pd.DataFrame({"region": ["north"], "revenue": [10.0], "units": [3], "transactions": [2],
...                      "avg_ticket": [5.0], "small_tickets": [2], "medium_tickets": [0], "large_tickets": [0]})
>>> len(MART_ROWS.validate(mart))
1
"""

from __future__ import annotations

import pandera.pandas as pa

from .columns import (
    LANDING_COLUMNS,
    QUARANTINE_COLUMNS,
    ROW_REASONS,
    TICKET_SIZES,
)


def _text(nullable: bool = False) -> pa.Column:
    return pa.Column(str, nullable=nullable)


#: Rows as extraction hands them to validation: every landing field as the text it arrived as.
RAW_ROWS = pa.DataFrameSchema(
    {
        **{column: _text(nullable=True) for column in LANDING_COLUMNS},
        "source_line": pa.Column("int64", pa.Check.ge(1)),
        "raw_line": _text(nullable=True),
    },
    name="raw_rows",
    strict=True,
    ordered=True,
)

#: A curated/sales data file (partitioned by sale_date and region).
CURATED_ROWS = pa.DataFrameSchema(
    {
        "transaction_id": pa.Column(str, pa.Check.str_length(min_value=1), unique=True),
        "store_id": pa.Column(str, pa.Check.str_length(min_value=1)),
        "product": pa.Column(str, pa.Check.str_length(min_value=1)),
        "quantity": pa.Column("int64", pa.Check.gt(0)),
        "unit_price": pa.Column("float64", pa.Check.gt(0)),
        "total": pa.Column("float64", pa.Check.ge(0)),
        "ticket_size": pa.Column(str, pa.Check.isin(list(TICKET_SIZES))),
    },
    name="curated_rows",
    strict=True,
    ordered=True,
)

#: A quarantine/sales data file (partitioned by sale_date): every field as it arrived, and why.
QUARANTINE_ROWS = pa.DataFrameSchema(
    {
        **{
            column: _text(nullable=True)
            for column in QUARANTINE_COLUMNS
            if column not in ("reason", "source_file", "source_line")
        },
        "reason": pa.Column(str, pa.Check.isin(list(ROW_REASONS))),
        "source_file": pa.Column(nullable=False),
        "source_line": pa.Column("int64", pa.Check.ge(1)),
    },
    name="quarantine_rows",
    strict=True,
    ordered=False,
)

#: A marts/region_daily data file (partitioned by sale_date): one row per region.
MART_ROWS = pa.DataFrameSchema(
    {
        "region": pa.Column(str, unique=True),
        "revenue": pa.Column("float64"),
        "units": pa.Column("int64", pa.Check.ge(0)),
        "transactions": pa.Column("int64", pa.Check.ge(0)),
        "avg_ticket": pa.Column("float64"),
        **{f"{size}_tickets": pa.Column("int64", pa.Check.ge(0)) for size in TICKET_SIZES},
    },
    name="mart_rows",
    strict=True,
    ordered=True,
)
