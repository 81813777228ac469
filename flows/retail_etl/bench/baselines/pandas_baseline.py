"""The pipeline's work for one day as a plain, vectorised pandas script: no orchestration.

Each CSV is read with pyarrow's CSV reader (every field a string, empty stays empty, lines with
the wrong number of fields caught with their line numbers by `invalid_row_handler`), the row
checks are whole-column operations in the contract's priority order, duplicates are judged
among otherwise-valid rows in file-name-then-line order, and the outputs are written straight
into the warehouse (curated partitioned by sale_date/region, quarantine, region mart, manifest).

Known simplifications against the pipeline: landing files must be CSV (Parquet landing files
are counted as rejected `unsupported_file_type`), and a quoted field spanning lines is not
followed (it shows up as malformed rows rather than one record).
"""

from __future__ import annotations

import io
import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ...contract.columns import (
    LANDING_COLUMNS,
    MART_COLUMNS,
    MAX_REGION_BYTES,
    QUARANTINE_COLUMNS,
    ROW_REASONS,
    TICKET_BOUNDS,
    TICKET_SIZES,
)
from ...contract.layout import CURATED, MARTS, QUARANTINE_ROWS, day_partition
from .landing import RejectedFile, column_names, keep_rejected, landing_files, write_manifest


def _physical_lines(data: bytes, count: int) -> np.ndarray:
    """Physical line number of each of the first `count` non-blank lines (pyarrow skips blank ones)."""
    if b"\n\n" not in data and b"\n\r\n" not in data and not data.startswith((b"\n", b"\r\n")):
        return np.arange(1, count + 1, dtype="int64")
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.append(np.flatnonzero(buffer == 10), len(buffer))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    blank = (lengths == 0) | ((lengths == 1) & (buffer[np.minimum(starts, len(buffer) - 1)] == 13))
    return (np.flatnonzero(~blank) + 1)[:count].astype("int64")


def read_rows(path: Path) -> pd.DataFrame:
    """One CSV as string rows plus `source_line` and `raw_line` (malformed lines); raises RejectedFile."""
    names = column_names(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    malformed: list[tuple[int, str]] = []

    def keep(row: pacsv.InvalidRow) -> str:
        malformed.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                include_columns=list(LANDING_COLUMNS),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0]
        reason = "bad_encoding" if "utf8" in message.lower() or "utf-8" in message.lower() else "unreadable"
        raise RejectedFile(reason, f"{path.name}: {message}") from None

    # pyarrow numbers non-blank lines from 1 (the header); map them to physical lines.
    lines = _physical_lines(data, table.num_rows + len(malformed) + 1)
    bad_numbers = np.array([number for number, _ in malformed], dtype="int64")
    good_numbers = np.setdiff1d(np.arange(2, len(lines) + 1), bad_numbers)
    rows = table.to_pandas()
    rows["source_line"] = lines[good_numbers - 1]
    rows["raw_line"] = None
    if malformed:
        broken = pd.DataFrame({"source_line": lines[bad_numbers - 1], "raw_line": [text for _, text in malformed]})
        rows = pd.concat([rows, broken], ignore_index=True)
    return rows


def _valid_dates(values: pd.Series) -> set[str]:
    """Which of these (distinct) strings are real YYYY-MM-DD dates."""
    shaped = values.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    parsed = pd.to_datetime(values.where(shaped), format="%Y-%m-%d", errors="coerce")
    return set(values[shaped & parsed.notna()])


def reasons(
    rows: pd.DataFrame, run_date: str, regions, max_quantity: float, max_unit_price: float
) -> tuple[np.ndarray, dict[str, pd.Series]]:
    """The reason of every row ('' when it passes) and the trimmed fields and numbers."""
    fields = {column: rows[column].str.strip() for column in LANDING_COLUMNS}
    quantity = pd.to_numeric(fields["quantity"], errors="coerce").astype("float64").to_numpy()
    price = pd.to_numeric(fields["unit_price"], errors="coerce").astype("float64").to_numpy()
    other_date = (fields["sale_date"] != run_date).to_numpy(dtype=bool)
    candidates = pd.Series(fields["sale_date"][other_date].dropna().unique(), dtype="str")
    conditions = [
        rows["raw_line"].notna().to_numpy(),
        np.logical_or.reduce([(fields[column] == "").to_numpy(dtype=bool) for column in LANDING_COLUMNS]),
        other_date & ~fields["sale_date"].isin(_valid_dates(candidates)).to_numpy(),
        other_date,
        ~(np.isfinite(quantity) & (quantity == np.floor(quantity)) & (quantity > 0) & (quantity <= max_quantity)),
        ~(np.isfinite(price) & (price > 0) & (price <= max_unit_price)),
        np.array([len(region.encode()) > MAX_REGION_BYTES for region in fields["region"].fillna("")]),
        ~fields["region"].isin(list(regions)).to_numpy() if regions else np.zeros(len(rows), dtype=bool),
    ]
    reason = np.select(conditions, list(ROW_REASONS[: len(conditions)]), default="").astype(object)
    valid = reason == ""
    # Rows are in file-name then line order, so keep="first" is the contract's tie-break.
    repeated = fields["transaction_id"][valid].duplicated(keep="first").to_numpy()
    reason[np.flatnonzero(valid)[repeated]] = "duplicate_transaction"
    numbers = {
        "quantity_value": pd.Series(quantity, index=rows.index),
        "unit_price_value": pd.Series(price, index=rows.index),
    }
    return reason, {**fields, **numbers}


def run(
    landing_day_dir: str | Path,
    warehouse_dir: str | Path,
    run_date: str | date,
    regions=None,
    max_quantity: float = 10_000,
    max_unit_price: float = 100_000.0,
) -> dict:
    """Process one day's landing folder into the warehouse; returns the manifest."""
    sale_date = str(run_date)
    warehouse = Path(warehouse_dir)
    run_id = uuid.uuid4().hex
    frames, accepted, rejected = [], [], []
    for path in landing_files(landing_day_dir):
        try:
            rows = read_rows(path)
        except RejectedFile as error:
            rejected.append(keep_rejected(path, warehouse, sale_date, error))
            continue
        rows["source_file"] = str(path)
        frames.append(rows)
        accepted.append({"file": str(path), "rows": len(rows)})
    empty = pd.DataFrame({column: pd.Series(dtype="str") for column in (*LANDING_COLUMNS, "raw_line", "source_file")})
    raw = pd.concat(frames, ignore_index=True) if frames else empty.assign(source_line=pd.Series(dtype="int64"))
    raw["source_file"] = raw["source_file"].astype("category")

    reason, fields = reasons(raw, sale_date, regions, max_quantity, max_unit_price)
    good = reason == ""

    quantity = fields["quantity_value"][good].astype("int64")
    total = (quantity.astype("float64") * fields["unit_price_value"][good]).round(2)
    curated = pd.DataFrame(
        {
            "transaction_id": fields["transaction_id"][good],
            "store_id": fields["store_id"][good],
            "product": fields["product"][good],
            "quantity": quantity,
            "unit_price": fields["unit_price_value"][good],
            "total": total,
            "ticket_size": pd.cut(total, [-np.inf, *TICKET_BOUNDS, np.inf], right=False, labels=list(TICKET_SIZES)),
            "sale_date": sale_date,
            "region": fields["region"][good],
        }
    )
    if len(curated):
        curated.to_parquet(
            warehouse / CURATED,
            partition_cols=["sale_date", "region"],
            index=False,
            compression="zstd",
            basename_template=f"{run_id}-{{i}}.parquet",
        )

    quarantine = raw.loc[~good].rename(columns={"sale_date": "raw_sale_date"})
    quarantine["reason"] = reason[~good]
    quarantine = quarantine[list(QUARANTINE_COLUMNS)]
    if len(quarantine):
        folder = warehouse / QUARANTINE_ROWS / day_partition(sale_date)
        folder.mkdir(parents=True, exist_ok=True)
        quarantine.to_parquet(folder / f"{run_id}.parquet", index=False, compression="zstd")

    by_region = curated.groupby("region", sort=True)
    mart = pd.DataFrame(
        {
            "revenue": by_region["total"].sum().round(2),
            "units": by_region["quantity"].sum(),
            "transactions": by_region.size(),
        }
    )
    sizes = pd.crosstab(curated["region"], curated["ticket_size"], dropna=False)
    for size in TICKET_SIZES:
        mart[f"{size}_tickets"] = sizes[size] if size in sizes else 0
    mart["avg_ticket"] = (mart["revenue"] / mart["transactions"]).round(2)
    mart = mart.reset_index()[list(MART_COLUMNS)]
    if len(mart):
        folder = warehouse / MARTS / day_partition(sale_date)
        folder.mkdir(parents=True, exist_ok=True)
        mart.to_parquet(folder / f"{run_id}.parquet", index=False, compression="zstd")

    counts = pd.Series(reason[~good]).value_counts()
    return write_manifest(
        warehouse,
        sale_date,
        run_id=run_id,
        rows_in=len(raw),
        reasons={r: int(counts[r]) for r in ROW_REASONS if r in counts},
        marts=mart.to_dict("records"),
        files_accepted=accepted,
        files_rejected=rejected,
    )
