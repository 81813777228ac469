"""Row-level validation: split a day's raw rows into clean typed rows and quarantine rows.

The field checks are one pandera schema (Polars backend: columnar, a fraction of the
pandas backend's CPU) whose check names are the quarantine reasons; a row failing
several checks gets the first reason in `ROW_REASONS` order.
Duplicates are judged last, among rows that passed everything else, so the
first valid occurrence of a transaction_id is the one published.

>>> import pandas as pd
>>> from datetime import date
>>> raw = pd.DataFrame({
...     "transaction_id": ["t1", "t1", "t2", "t3"], "sale_date": ["2024-01-15"] * 4,
...     "store_id": ["s1"] * 4, "region": ["north"] * 4, "product": ["tea"] * 4,
...     "quantity": ["2", "2", "-1", "3"], "unit_price": ["1.5", "1.5", "2", "x"],
...     "source_line": [2, 3, 4, 5], "raw_line": [None] * 4, "source_file": ["s1.csv"] * 4})
>>> clean, quarantine = split_rows(raw, Rules(run_date=date(2024, 1, 15)))
>>> clean["transaction_id"].tolist(), quarantine["reason"].tolist()
(['t1'], ['duplicate_transaction', 'bad_quantity', 'bad_price'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pdpa
import pandera.polars as pa
import polars as pl
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.api.polars.types import PolarsData

from ..contract.columns import LANDING_COLUMNS, MAX_REGION_BYTES, QUARANTINE_COLUMNS, ROW_REASONS
from .numbers import NOT_A_PRICE, PRICE_CEILING, nanos_of, price_nanos_array, whole_number_array

#: Quantities stay exact as float64 below this.
MAX_QUANTITY_CEILING = 2**53
_PRIORITY = {reason: rank for rank, reason in enumerate(ROW_REASONS)}
_ISO_DATE = r"\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class Rules:
    """What a valid row looks like for one run date."""

    run_date: date
    max_quantity: int = 10_000
    max_unit_price: float = 100_000.0
    regions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.max_quantity < MAX_QUANTITY_CEILING:
            raise ValueError(f"max_quantity must be positive and below {MAX_QUANTITY_CEILING:,}")
        if not 0 < self.max_unit_price < PRICE_CEILING:
            raise ValueError(f"max_unit_price must be positive and below {PRICE_CEILING:,}")
        if self.regions is not None and not self.regions:
            raise ValueError("regions must be None (accept any) or a non-empty set")


def _real_dates(values: pl.Series) -> list[str]:
    """Which of these distinct strings are real YYYY-MM-DD dates (the calendar of pandas' parser)."""
    text = pd.Series(values.to_list(), dtype="str")
    shaped = text.str.fullmatch(_ISO_DATE).fillna(False).astype(bool)
    parsed = pd.to_datetime(text.where(shaped), format="%Y-%m-%d", errors="coerce")
    return text[shaped & parsed.notna()].tolist()


def _is_iso_date(data: PolarsData, run_date: str) -> pl.LazyFrame:
    """Real dates; values equal to the run date (almost every row) skip the parse."""
    column = pl.col(data.key)
    others = data.lazyframe.select(column).filter(column != run_date).unique().collect().to_series()
    return data.lazyframe.select((column == run_date) | column.is_in(_real_dates(others)))


def _check(name: str, test: Callable[[pl.Expr], pl.Expr], **options: Any) -> pa.Check:
    """A column check from a Polars expression over the column; its name is the quarantine reason."""
    return pa.Check(lambda data: data.lazyframe.select(test(pl.col(data.key))), name=name, **options)


def field_schema(rules: Rules) -> pa.DataFrameSchema:
    """Per-field checks (Polars backend: columnar, one pass per check); each check's name is the
    quarantine reason it produces."""
    present = _check("missing_field", lambda c: c.str.len_bytes() > 0)
    run_date = rules.run_date.isoformat()
    columns: dict[str, pa.Column] = {name: pa.Column(str, checks=[present]) for name in LANDING_COLUMNS}
    columns["sale_date"] = pa.Column(
        str,
        checks=[
            present,
            pa.Check(lambda data: _is_iso_date(data, run_date), name="bad_date"),
            _check("date_mismatch", lambda c: c == run_date),
        ],
    )
    region_checks = [present, _check("bad_region", lambda c: c.str.len_bytes() <= MAX_REGION_BYTES)]
    if rules.regions is not None:
        allowed = sorted(rules.regions)
        region_checks.append(_check("unknown_region", lambda c: c.is_in(allowed)))
    columns["region"] = pa.Column(str, checks=region_checks)
    columns["quantity_value"] = pa.Column(
        pl.Float64,
        nullable=True,
        checks=[
            _check("bad_quantity", lambda c: c.is_not_null() & c.is_not_nan(), ignore_na=False),
            _check("bad_quantity", lambda c: c > 0),
            _check("bad_quantity", lambda c: c <= rules.max_quantity),
        ],
    )
    most = nanos_of(rules.max_unit_price)
    columns["unit_price_nanos"] = pa.Column(
        pl.Int64,
        checks=[
            _check("bad_price", lambda c: c != NOT_A_PRICE),
            _check("bad_price", lambda c: c > 0),
            _check("bad_price", lambda c: c <= most),
        ],
    )
    return pa.DataFrameSchema(columns, name="landing_rows")


UNIQUE_TRANSACTIONS = pdpa.DataFrameSchema(
    {"transaction_id": pdpa.Column(unique=True, report_duplicates="exclude_first")},
    name="unique_transactions",
)


def _failed_checks(schema: pa.DataFrameSchema, fields: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(row position, check name) of each failed check; empty when the frame passes."""
    try:
        schema.validate(fields, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.filter(pl.col("index").is_not_null())
        return cases["index"].to_numpy().astype("int64"), cases["check"].to_numpy().astype(object)
    return np.empty(0, dtype="int64"), np.empty(0, dtype=object)


def _duplicate_failures(transaction_ids: pd.Series) -> pd.Series:
    """Index labels of the repeated transaction_ids that pandera reports (all but the first)."""
    try:
        UNIQUE_TRANSACTIONS.validate(transaction_ids.to_frame("transaction_id"), lazy=True)
    except pdpa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return cases.loc[cases["index"].notna(), "index"]
    return pd.Series(dtype="int64")


def _field_table(raw: pd.DataFrame) -> pa_arrow.Table:
    """Every landing field stripped (Arrow's Unicode whitespace trim, as pandas' ``str.strip``;
    a malformed row's missing fields as empty text), with the quantity and price parsed exactly
    (`core.numbers`)."""
    table = pa_arrow.Table.from_pandas(raw[list(LANDING_COLUMNS)], preserve_index=False)
    stripped = {column: pc.utf8_trim_whitespace(table.column(column)).fill_null("") for column in LANDING_COLUMNS}
    numbers = {
        "quantity_value": whole_number_array(stripped["quantity"]),
        "unit_price_nanos": price_nanos_array(stripped["unit_price"]),
    }
    return pa_arrow.table({**stripped, **numbers})


def _field_reasons(raw: pd.DataFrame, rules: Rules) -> tuple[pd.Series, pa_arrow.Table]:
    """Reasons from every check but duplicates, and the stripped, parsed fields of every row."""
    fields = _field_table(raw)
    frame = pl.from_arrow(fields)
    assert isinstance(frame, pl.DataFrame)
    positions, checks = _failed_checks(field_schema(rules), frame)
    ranks = pd.Series(checks, dtype=object).map(_PRIORITY)
    if ranks.isna().any():
        raise RuntimeError(f"validation failed outside the reason vocabulary: {sorted(set(checks[ranks.isna()]))}")
    first = np.full(len(raw), len(ROW_REASONS), dtype="int64")  # past the last reason: none
    np.minimum.at(first, positions, ranks.to_numpy(dtype="int64"))
    first[raw["raw_line"].notna().to_numpy()] = 0  # malformed_row: its fields mean nothing
    vocabulary = np.asarray([*ROW_REASONS, None], dtype=object)
    return pd.Series(vocabulary[first], index=raw.index, dtype="str"), fields


def duplicate_rows(transaction_ids: pd.Series) -> pd.Index:
    """Index labels of repeated transaction_ids, every occurrence after the first."""
    return pd.Index(_duplicate_failures(transaction_ids).astype("int64").unique())


def row_reasons(raw: pd.DataFrame, rules: Rules) -> pd.Series:
    """The quarantine reason of each row of `raw` (missing for rows that pass)."""
    reasons, fields = _field_reasons(raw, rules)
    passing = reasons.isna().to_numpy()
    ids = pd.Series(fields.column("transaction_id").to_numpy()[passing], index=raw.index[passing], dtype="str")
    reasons.loc[duplicate_rows(ids)] = "duplicate_transaction"
    return reasons


def quarantine_rows(raw: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """Rows with a reason, every original field as it arrived, in the quarantine layout."""
    bad = reasons.notna()
    quarantine = raw.loc[bad].rename(columns={"sale_date": "raw_sale_date"})
    quarantine["reason"] = reasons[bad]
    quarantine = quarantine[list(QUARANTINE_COLUMNS)].reset_index(drop=True)
    quarantine["source_line"] = quarantine["source_line"].astype("int64")
    return quarantine


#: What validation parsed, carried with the rows that passed so the duplicate check need not parse again.
PARSED_COLUMNS: tuple[str, ...] = ("quantity_value", "unit_price_nanos", "unit_price_value")


def typed_rows(candidates: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Clean rows in their published types, from candidates (raw text and `PARSED_COLUMNS`)."""
    return pd.DataFrame(
        {
            "transaction_id": candidates["transaction_id"].str.strip(),
            "sale_date": pd.Series(np.full(len(candidates), rules.run_date, dtype=object), index=candidates.index),
            "store_id": candidates["store_id"].str.strip(),
            "region": candidates["region"].str.strip(),
            "product": candidates["product"].str.strip(),
            "quantity": candidates["quantity_value"].astype("int64"),
            "unit_price": candidates["unit_price_value"].astype("float64"),
            "unit_price_nanos": candidates["unit_price_nanos"].astype("int64"),
        }
    ).reset_index(drop=True)


def split_field_checks(raw: pd.DataFrame, rules: Rules) -> tuple[pa_arrow.Table, pd.DataFrame]:
    """Raw rows passing every check but the duplicate one (an Arrow table: raw text, ``source_line``,
    ``source_file`` and `PARSED_COLUMNS`), and quarantine rows for the rest.

    This is the part of validation that needs only one file; duplicates need the whole day.
    """
    reasons, fields = _field_reasons(raw, rules)
    passing = pa_arrow.array(reasons.isna().to_numpy())
    chosen = fields.filter(passing)
    columns = [*LANDING_COLUMNS, "source_line", "source_file"]
    candidates = pa_arrow.Table.from_pandas(raw[columns], preserve_index=False).filter(passing)
    candidates = candidates.append_column("quantity_value", pc.cast(chosen.column("quantity_value"), "int64"))
    candidates = candidates.append_column("unit_price_nanos", chosen.column("unit_price_nanos"))
    candidates = candidates.append_column("unit_price_value", pc.cast(chosen.column("unit_price"), "float64"))
    return candidates.replace_schema_metadata(None), quarantine_rows(raw, reasons)


def split_duplicates(candidates: pd.DataFrame | pa_arrow.Table, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean typed rows and `duplicate_transaction` quarantine rows, from rows that passed the
    field checks (`split_field_checks`), in first-seen order (the first occurrence wins).

    With an ``id_hash`` column (a hash of the stripped transaction_id), only rows whose hash
    repeats go through the exact check: equal ids have equal hashes, so none is missed.
    """
    if isinstance(candidates, pa_arrow.Table):
        candidates = candidates.to_pandas()
    candidates = candidates.reset_index(drop=True)
    if "raw_line" not in candidates:
        candidates["raw_line"] = pd.Series(pd.NA, index=candidates.index, dtype="str")  # none: they parsed
    suspects = candidates["transaction_id"]
    if "id_hash" in candidates:
        suspects = suspects[candidates["id_hash"].duplicated(keep=False).to_numpy()]
    reasons = pd.Series(pd.NA, index=candidates.index, dtype="str")
    reasons.loc[duplicate_rows(suspects.str.strip())] = "duplicate_transaction"
    clean = candidates.loc[reasons.isna()] if reasons.notna().any() else candidates
    return typed_rows(clean, rules), quarantine_rows(candidates, reasons)


def split_rows(raw: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean typed rows and quarantine rows; together they account for every input row."""
    candidates, quarantine = split_field_checks(raw, rules)
    clean, duplicates = split_duplicates(candidates, rules)
    return clean, pd.concat([quarantine, duplicates], ignore_index=True).sort_values(
        ["source_file", "source_line"], kind="stable", ignore_index=True
    ) if len(duplicates) else quarantine
