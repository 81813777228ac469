"""Row-level validation: split a day's raw rows into clean typed rows and quarantine rows.

The checks are a pandera schema whose check names are the quarantine reasons; a
row failing several checks gets the first reason in `ROW_REASONS` order.
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

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from ..contract.columns import LANDING_COLUMNS, MAX_REGION_BYTES, QUARANTINE_COLUMNS, ROW_REASONS
from .numbers import NOT_A_PRICE, PRICE_CEILING, decimal_floats, nanos_of, price_nanos, whole_numbers

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


def _is_iso_date(values: pd.Series, run_date: str) -> pd.Series:
    """Real YYYY-MM-DD dates; values equal to the run date (almost every row) skip the parse."""
    valid = values == run_date
    unknown = ~valid
    shaped = values[unknown].str.fullmatch(_ISO_DATE).fillna(False).astype(bool)
    parsed = pd.to_datetime(values[unknown].where(shaped), format="%Y-%m-%d", errors="coerce")
    valid[unknown] = shaped & parsed.notna()
    return valid


def field_schema(rules: Rules) -> pa.DataFrameSchema:
    """Per-field checks; each check's name is the quarantine reason it produces."""
    present = pa.Check(lambda s: s.str.len() > 0, name="missing_field")
    columns: dict[str, pa.Column] = {name: pa.Column(checks=[present]) for name in LANDING_COLUMNS}
    columns["sale_date"] = pa.Column(
        checks=[
            present,
            pa.Check(lambda s: _is_iso_date(s, rules.run_date.isoformat()), name="bad_date"),
            pa.Check(lambda s: s == rules.run_date.isoformat(), name="date_mismatch"),
        ]
    )
    columns["region"] = pa.Column(checks=[present, pa.Check(_fits_a_folder_name, name="bad_region")])
    if rules.regions is not None:
        allowed = sorted(rules.regions)
        columns["region"].checks.append(pa.Check(lambda s: s.isin(allowed), name="unknown_region"))
    columns["quantity_value"] = pa.Column(
        float,
        nullable=True,
        checks=[
            pa.Check(lambda s: s.notna(), name="bad_quantity", ignore_na=False),
            pa.Check(lambda s: s > 0, name="bad_quantity"),
            pa.Check(lambda s: s <= rules.max_quantity, name="bad_quantity"),
        ],
    )
    most = nanos_of(rules.max_unit_price)
    columns["unit_price_nanos"] = pa.Column(
        "int64",
        checks=[
            pa.Check(lambda s: s != NOT_A_PRICE, name="bad_price"),
            pa.Check(lambda s: s > 0, name="bad_price"),
            pa.Check(lambda s: s <= most, name="bad_price"),
        ],
    )
    return pa.DataFrameSchema(columns, name="landing_rows")


UNIQUE_TRANSACTIONS = pa.DataFrameSchema(
    {"transaction_id": pa.Column(unique=True, report_duplicates="exclude_first")},
    name="unique_transactions",
)


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """(index, check) pairs of failed checks; empty when the frame passes."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        return cases.loc[cases["index"].notna(), ["index", "check"]]
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "check": pd.Series(dtype="str")})


def _fits_a_folder_name(regions: pd.Series) -> pd.Series:
    """A region becomes a partition folder name (percent-encoded): at most MAX_REGION_BYTES of UTF-8."""
    return pd.Series(pc.binary_length(pa_arrow.array(regions.astype("str"))).to_numpy(), index=regions.index) <= (
        MAX_REGION_BYTES
    )


def _stripped_fields(raw: pd.DataFrame, columns: tuple[str, ...] = LANDING_COLUMNS) -> pd.DataFrame:
    fields = pd.DataFrame({column: raw[column].str.strip() for column in columns}, index=raw.index)
    fields["quantity_value"] = whole_numbers(fields["quantity"])
    fields["unit_price_nanos"] = price_nanos(fields["unit_price"])
    return fields


def _field_reasons(raw: pd.DataFrame, rules: Rules) -> tuple[pd.Series, pd.DataFrame]:
    """Reasons from every check but duplicates, and the stripped, parsed fields of well-formed rows."""
    reasons = pd.Series(pd.NA, index=raw.index, dtype="str")
    reasons[raw["raw_line"].notna()] = "malformed_row"
    fields = _stripped_fields(raw.loc[reasons.isna()])
    failures = _failures(field_schema(rules), fields)
    if len(failures):
        ranks = failures["check"].map(_PRIORITY)
        if ranks.isna().any():
            unknown = sorted(failures.loc[ranks.isna(), "check"].astype(str).unique())
            raise RuntimeError(f"validation failed outside the reason vocabulary: {unknown}")
        first = ranks.groupby(failures["index"].astype("int64")).min()
        reasons.loc[first.index] = np.asarray(ROW_REASONS, dtype=object)[first.to_numpy(dtype="int64")]
    return reasons, fields


def duplicate_rows(transaction_ids: pd.Series) -> pd.Index:
    """Index labels of repeated transaction_ids, every occurrence after the first."""
    duplicates = _failures(UNIQUE_TRANSACTIONS, transaction_ids.to_frame("transaction_id"))
    return pd.Index(duplicates["index"].astype("int64").unique())


def row_reasons(raw: pd.DataFrame, rules: Rules) -> pd.Series:
    """The quarantine reason of each row of `raw` (missing for rows that pass)."""
    reasons, fields = _field_reasons(raw, rules)
    passing = fields.loc[reasons.loc[fields.index].isna(), "transaction_id"]
    reasons.loc[duplicate_rows(passing)] = "duplicate_transaction"
    return reasons


def quarantine_rows(raw: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """Rows with a reason, every original field as it arrived, in the quarantine layout."""
    bad = reasons.notna()
    quarantine = raw.loc[bad].rename(columns={"sale_date": "raw_sale_date"})
    quarantine["reason"] = reasons[bad]
    quarantine = quarantine[list(QUARANTINE_COLUMNS)].reset_index(drop=True)
    quarantine["source_line"] = quarantine["source_line"].astype("int64")
    return quarantine


def typed_rows(fields: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Clean rows in their published types, from stripped and parsed fields."""
    return pd.DataFrame(
        {
            "transaction_id": fields["transaction_id"],
            "sale_date": pd.Series(np.full(len(fields), rules.run_date, dtype=object), index=fields.index),
            "store_id": fields["store_id"],
            "region": fields["region"],
            "product": fields["product"],
            "quantity": fields["quantity_value"].astype("int64"),
            "unit_price": decimal_floats(fields["unit_price"]),
            "unit_price_nanos": fields["unit_price_nanos"],
        }
    ).reset_index(drop=True)


def split_field_checks(raw: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw rows passing every check but the duplicate one (still raw), and quarantine rows for the rest.

    This is the part of validation that needs only one file; duplicates need the whole day.
    """
    reasons, _ = _field_reasons(raw, rules)
    return raw.loc[reasons.isna()].reset_index(drop=True), quarantine_rows(raw, reasons)


def split_duplicates(candidates: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean typed rows and `duplicate_transaction` quarantine rows, from rows that passed the
    field checks, in first-seen order (the first occurrence wins).

    With an ``id_hash`` column (a hash of the stripped transaction_id), only rows whose hash
    repeats go through the exact check: equal ids have equal hashes, so none is missed.
    """
    candidates = candidates.reset_index(drop=True)
    fields = _stripped_fields(candidates, tuple(c for c in LANDING_COLUMNS if c != "sale_date"))
    ids = fields["transaction_id"]
    if "id_hash" in candidates:
        ids = ids[candidates["id_hash"].duplicated(keep=False).to_numpy()]
    reasons = pd.Series(pd.NA, index=candidates.index, dtype="str")
    reasons.loc[duplicate_rows(ids)] = "duplicate_transaction"
    return typed_rows(fields.loc[reasons.isna()], rules), quarantine_rows(candidates, reasons)


def split_rows(raw: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean typed rows and quarantine rows; together they account for every input row."""
    candidates, quarantine = split_field_checks(raw, rules)
    clean, duplicates = split_duplicates(candidates, rules)
    return clean, pd.concat([quarantine, duplicates], ignore_index=True).sort_values(
        ["source_file", "source_line"], kind="stable", ignore_index=True
    ) if len(duplicates) else quarantine
