"""Turn one landing file's bytes into a frame of raw strings, or reject the file.

Every field stays the exact string it arrived as (validation decides what it
means), and each row keeps its physical line number so quarantine rows point
back at the source. Rows with the wrong number of fields are kept too, as
``raw_line`` with the fields empty, so nothing read is ever dropped.

>>> frame = read_landing_bytes(b"transaction_id,sale_date,store_id,region,product,quantity,unit_price\\n"
...                            b"t1,2024-01-15,s1,north,tea,2,3.50\\n\\nbroken,line\\n", "s1.csv")
>>> frame["source_line"].tolist(), frame["raw_line"].tolist()[1]
([2, 4], 'broken,line')
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contract.columns import FILE_REASONS, LANDING_COLUMNS
from ..contract.layout import LANDING_SUFFIXES
from ..errors import RejectedFile

#: Bump when extraction output changes, so cached extractions are not reused.
EXTRACT_VERSION = "2"

RAW_COLUMNS: tuple[str, ...] = (*LANDING_COLUMNS, "source_line", "raw_line")


@dataclass(frozen=True)
class ParseLimits:
    """How far a quoted field may run: a record whose quote is still open after this many physical
    lines or bytes (or at the end of the file) is a run-away; its first line is quarantined alone
    and reading resumes on the next line, so one stray quote cannot swallow the rows after it."""

    max_record_lines: int = 100
    max_record_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.max_record_lines < 1 or self.max_record_bytes < 1:
            raise ValueError("max_record_lines and max_record_bytes must be positive")


def reject(reason: str, detail: str) -> RejectedFile:
    """A file-level verdict, with the reason checked against the contract's vocabulary."""
    if reason not in FILE_REASONS:
        raise ValueError(f"{reason!r} is not a file rejection reason ({', '.join(FILE_REASONS)})")
    return RejectedFile(reason, detail)


def read_landing_bytes(data: bytes, name: str, limits: ParseLimits = ParseLimits()) -> pd.DataFrame:
    """Parse a landing file (CSV or Parquet, chosen by its name) into raw string rows.

    Raises `RejectedFile` (and nothing else) when the file as a whole cannot be read."""
    suffix = posixpath.splitext(name)[1].lower()
    if suffix not in LANDING_SUFFIXES:
        raise reject("unsupported_file_type", f"{name}: expected one of {', '.join(LANDING_SUFFIXES)}")
    if not data:
        raise reject("empty_file", f"{name} has no bytes")
    if suffix == ".parquet":
        return _read_parquet(data, name)
    return _read_csv(data, name)


def _check_columns(present: list[str], name: str) -> None:
    missing = [column for column in LANDING_COLUMNS if column not in present]
    if missing:
        raise reject("missing_columns", f"{name} lacks {', '.join(missing)}")


def _header_names(data: bytes, name: str) -> list[str]:
    """The header's column names as pyarrow will see them (quotes removed, spaces kept)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise reject("bad_encoding", f"{name} is UTF-16; landing files must be UTF-8")
    if b"\x00" in data[:65536]:
        raise reject("unreadable", f"{name} contains NUL bytes: binary, not CSV text")
    try:
        header = _header_line(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise reject("bad_encoding", f"{name}: header is not UTF-8 ({exc.reason})") from None
    return next(csv.reader([header]), [])


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    raw_names = _header_names(data, name)
    by_name: dict[str, str] = {}
    for raw in raw_names:
        key = raw.strip().lower()
        if key in LANDING_COLUMNS and key in by_name:
            raise reject("unreadable", f"{name}: column {key!r} appears twice in the header")
        by_name.setdefault(key, raw)
    _check_columns(list(by_name), name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]

    malformed: list[tuple[int, str]] = []

    def keep_malformed(row: pacsv.InvalidRow) -> str:
        malformed.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_malformed),
            convert_options=pacsv.ConvertOptions(
                column_types={raw: pa.string() for raw in raw_names},
                include_columns=[by_name[column] for column in LANDING_COLUMNS],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        message = str(exc)
        reason = "bad_encoding" if "UTF8" in message or "utf-8" in message.lower() else "unreadable"
        raise reject(reason, f"{name}: {message.splitlines()[0]}") from None
    table = table.rename_columns(list(LANDING_COLUMNS))

    lines = _nonblank_line_numbers(data)
    # pyarrow numbers rows among non-blank lines, header included, from 1.
    bad_rows = np.array([number - 1 for number, _ in malformed], dtype="int64")
    data_rows = np.setdiff1d(np.arange(1, len(lines)), bad_rows, assume_unique=True)
    if len(data_rows) != table.num_rows or b'"' in b"".join(text.encode() for _, text in malformed):
        # A quoted field may span lines, so rows are not lines: take the exact (slower) path.
        return _read_csv_exact(data, raw_names, by_name)

    frame = _as_string_frame(table)
    frame["source_line"] = lines[data_rows]
    frame["raw_line"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    if malformed:
        broken = pd.DataFrame({column: pd.Series([None] * len(malformed), dtype="str") for column in LANDING_COLUMNS})
        broken["source_line"] = lines[bad_rows]
        broken["raw_line"] = pd.Series([text for _, text in malformed], dtype="str")
        frame = pd.concat([frame, broken], ignore_index=True).sort_values("source_line", kind="stable")
    return frame.reset_index(drop=True)[list(RAW_COLUMNS)]


def _read_csv_exact(data: bytes, raw_names: list[str], by_name: dict[str, str]) -> pd.DataFrame:
    """Record-by-record parse that follows quoted newlines; source_line is a record's first line."""
    text = data.decode("utf-8")
    physical = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader, None)
    positions = [raw_names.index(by_name[column]) for column in LANDING_COLUMNS]
    records: list[list] = []
    start = reader.line_num + 1
    for fields in reader:
        end = reader.line_num
        if fields:
            if len(fields) == len(raw_names):
                records.append([fields[position] for position in positions] + [start, None])
            else:
                records.append([None] * len(LANDING_COLUMNS) + [start, "\n".join(physical[start - 1 : end])])
        start = end + 1
    frame = pd.DataFrame(records, columns=list(RAW_COLUMNS))
    for column in (*LANDING_COLUMNS, "raw_line"):
        frame[column] = frame[column].astype("str")
    frame["source_line"] = frame["source_line"].astype("int64")
    return frame


def _header_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return (data if end < 0 else data[:end]).rstrip(b"\r")


def _nonblank_line_numbers(data: bytes) -> np.ndarray:
    """1-based physical line numbers of the lines pyarrow does not skip as blank."""
    if b"\n\n" not in data and b"\n\r\n" not in data and not data.startswith((b"\n", b"\r\n")):
        count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        return np.arange(1, count + 1, dtype="int64")
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    crlf = (lengths == 1) & (buffer[np.minimum(starts, len(buffer) - 1)] == 13)
    return np.flatnonzero((lengths > 0) & ~crlf).astype("int64") + 1


def _as_string_frame(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame({column: table.column(column).to_pandas().astype("str") for column in LANDING_COLUMNS})


def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
        raise reject("unreadable", f"{name}: not a readable Parquet file ({exc})") from None
    _check_columns(table.column_names, name)
    frame = pd.DataFrame({column: _parquet_column_as_text(table.column(column)) for column in LANDING_COLUMNS})
    frame["source_line"] = np.arange(1, len(frame) + 1, dtype="int64")
    frame["raw_line"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame[list(RAW_COLUMNS)]


def _parquet_column_as_text(column: pa.ChunkedArray) -> pd.Series:
    """Render typed Parquet values the way they would appear in a CSV; nulls become empty."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = column
    else:
        values = column.cast(pa.string())
    return values.fill_null("").to_pandas().astype("str")
