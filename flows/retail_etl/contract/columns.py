"""Column names, quarantine reasons and ticket sizes: the vocabulary of every stage.

Keeping these in one place means the generator, the validator, the publisher and
the tests cannot drift apart.

>>> ROW_REASONS[0], ROW_REASONS[-1]
('malformed_row', 'duplicate_transaction')
"""

from __future__ import annotations

#: Columns every landing file must carry, in the order `generate` writes them.
LANDING_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "sale_date",
    "store_id",
    "region",
    "product",
    "quantity",
    "unit_price",
)

#: Row-level quarantine reasons, in priority order: a row failing several checks
#: is quarantined with the first one that applies.
ROW_REASONS: tuple[str, ...] = (
    "malformed_row",
    "missing_field",
    "bad_date",
    "date_mismatch",
    "bad_quantity",
    "bad_price",
    "bad_region",
    "unknown_region",
    "duplicate_transaction",
)

#: A region is a partition folder name (percent-encoded, so up to 3 characters a byte): at most
#: this many bytes of UTF-8 keep the name within every file system's 255-byte limit.
MAX_REGION_BYTES = 64

#: Why a whole landing file can be rejected (copied to quarantine/files).
FILE_REASONS: tuple[str, ...] = (
    "empty_file",
    "bad_encoding",
    "missing_columns",
    "unreadable",
    "unsupported_file_type",
)

#: Quarantine rows: every landing field as the string it arrived as, the raw line of
#: malformed rows, and where it came from. The arrived sale_date is kept as
#: `raw_sale_date` because `sale_date` is the partition key (the run's date).
QUARANTINE_COLUMNS: tuple[str, ...] = (
    *("raw_sale_date" if column == "sale_date" else column for column in LANDING_COLUMNS),
    "raw_line",
    "reason",
    "source_file",
    "source_line",
)

#: Columns stored in curated files; sale_date and region live in the partition path.
CURATED_FILE_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "store_id",
    "product",
    "quantity",
    "unit_price",
    "total",
    "ticket_size",
)

TICKET_SIZES: tuple[str, ...] = ("small", "medium", "large")
#: Lower bounds of the medium and large ticket sizes (line total, currency units).
TICKET_BOUNDS: tuple[float, float] = (100.0, 500.0)

MART_COLUMNS: tuple[str, ...] = (
    "region",
    "revenue",
    "units",
    "transactions",
    "avg_ticket",
    "small_tickets",
    "medium_tickets",
    "large_tickets",
)
