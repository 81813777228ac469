"""Turn one landing file's bytes into a frame of raw strings, or reject the file.

Every field stays the exact string it arrived as (validation decides what it
means), and each row keeps its physical line number so quarantine rows point
back at the source (see `lines` for what a line is). Rows with the wrong number of
fields, and lines where a quoted field runs away (`ParseLimits`), are kept too, as
``raw_line`` with the fields empty, so nothing read is ever dropped. Blank lines
(nothing, or only spaces and tabs) are not rows. A file fails as a whole only for
what makes it no CSV at all: not UTF-8, a NUL byte anywhere, no header, missing
columns; a header-only file is a day with no sales.

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
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contract.columns import FILE_REASONS, LANDING_COLUMNS
from ..contract.layout import LANDING_SUFFIXES
from ..errors import RejectedFile
from .lines import PhysicalLines
from .numbers import float_text

#: Bump when extraction output changes, so cached extractions are not reused.
EXTRACT_VERSION = "3"

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

    Raises `RejectedFile` (and nothing else) when the file as a whole cannot be read: whatever a
    parser raises on hostile bytes becomes an `unreadable` verdict with a short, escaped detail."""
    suffix = posixpath.splitext(name)[1].lower()
    if suffix not in LANDING_SUFFIXES:
        raise reject("unsupported_file_type", f"{name}: expected one of {', '.join(LANDING_SUFFIXES)}")
    if not data:
        raise reject("empty_file", f"{name} has no bytes")
    try:
        return _read_parquet(data, name) if suffix == ".parquet" else _read_csv(data, name, limits)
    except (RejectedFile, MemoryError):
        raise
    except Exception as error:  # a parser's failure on one file must not fail the day
        raise reject("unreadable", f"{name}: {type(error).__name__}: {excerpt(str(error))}") from None


def excerpt(text: str, limit: int = 160) -> str:
    """At most `limit` characters of `text` with control characters escaped: safe for one log line."""
    cut = text[:limit]
    escaped = "".join(char if char.isprintable() else repr(char)[1:-1] for char in cut)
    return escaped + ("..." if len(text) > limit else "")


def _landing_names(present: list[str], name: str) -> dict[str, str]:
    """Each landing column's name as it appears (matched trimmed and case-insensitively)."""
    by_name: dict[str, str] = {}
    for raw in present:
        key = raw.strip().lower()
        if key in LANDING_COLUMNS and key in by_name:
            raise reject("unreadable", f"{name}: column {key!r} appears twice in the header")
        by_name.setdefault(key, raw)
    missing = [column for column in LANDING_COLUMNS if column not in by_name]
    if missing:
        raise reject("missing_columns", f"{name} lacks {', '.join(missing)}")
    return {column: by_name[column] for column in LANDING_COLUMNS}


def _text_of(data: bytes, name: str) -> bytes:
    """The file's bytes once they are known to be UTF-8 text without NUL bytes (BOM removed)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise reject("bad_encoding", f"{name} is UTF-16; landing files must be UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        line = PhysicalLines(data[: nul + 1]).number_at(nul)
        raise reject("unreadable", f"{name} has a NUL byte on line {line}: binary, not CSV text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = PhysicalLines(data[: error.start + 1]).number_at(error.start)
        raise reject(
            "bad_encoding", f"{name}: not UTF-8 on line {line} (byte 0x{data[error.start]:02x}); files must be UTF-8"
        ) from None
    return data


def _read_csv(data: bytes, name: str, limits: ParseLimits) -> pd.DataFrame:
    data = _text_of(data, name)
    lines = PhysicalLines(data)
    filled = np.flatnonzero(~lines.blank)
    if not len(filled):
        raise reject("missing_columns", f"{name} has no header line (only blank lines)")
    header = int(filled[0]) + 1
    raw_names = next(csv.reader([lines.text(header)]), [])
    by_name = _landing_names(raw_names, name)
    if len(filled) == 1:
        return _frame(_nulls(0), np.empty(0, dtype="int64"), [])
    try:
        fast = _read_csv_fast(data, lines, header, raw_names, by_name)
    except pa.ArrowInvalid:
        fast = None  # e.g. a line longer than pyarrow's block: the exact path has no such limit
    return fast if fast is not None else _read_csv_exact(lines, header, raw_names, by_name, limits)


#: pandas' ``str`` dtype for Arrow text, so one conversion at the end builds the frame.
_TEXT_DTYPES = {
    pa.string(): pd.StringDtype("pyarrow", na_value=np.nan),
    pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan),
}


def _frame(columns: dict[str, pa.Array | pa.ChunkedArray], numbers: np.ndarray, raw: list[str | None]) -> pd.DataFrame:
    """The raw-rows frame from the landing columns' text, line numbers and raw lines (in Arrow
    until one conversion: per-column pandas work costs milliseconds a file)."""
    table = pa.table(
        {
            **{column: columns[column] for column in LANDING_COLUMNS},
            "source_line": pa.array(np.asarray(numbers, dtype="int64")),
            "raw_line": pa.array(raw, type=pa.large_string()),
        }
    )
    return table.to_pandas(types_mapper=_TEXT_DTYPES.get)


def _nulls(count: int) -> dict[str, pa.Array]:
    return {column: pa.nulls(count, pa.large_string()) for column in LANDING_COLUMNS}


def _read_csv_fast(
    data: bytes, lines: PhysicalLines, header: int, raw_names: list[str], by_name: dict[str, str]
) -> pd.DataFrame | None:
    """pyarrow's parse when every record is one physical line (checked); None when it is not."""
    skipped: list[int] = []

    def keep_invalid(row: pacsv.InvalidRow) -> str:
        skipped.append(row.number)
        return "skip"

    start = int(lines.starts[header - 1])
    body = data[start:] if data.endswith((b"\n", b"\r")) else data[start:] + b"\n"
    table = pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=min(1 << 24, len(body) + 1)),
        parse_options=pacsv.ParseOptions(invalid_row_handler=keep_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={raw: pa.string() for raw in raw_names},
            include_columns=list(by_name.values()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    # pyarrow numbers the non-empty lines from the header (= 1); empty lines are not rows to it.
    counted = np.flatnonzero(~lines.empty[header - 1 :]) + header
    invalid = counted[np.asarray(skipped, dtype="int64") - 1] if skipped else np.empty(0, dtype="int64")
    records = np.setdiff1d(counted[1:], invalid, assume_unique=True)
    if len(records) != table.num_rows:
        return None  # a quoted field spans lines: rows are not lines
    last = int(counted[-1])
    if data.count(b'"', int(lines.starts[last - 1]), int(lines.ends[last - 1])) % 2:
        return None  # the last line may open a quote that the end of the file cuts off
    broken = invalid[~lines.blank[invalid - 1]]
    if any(b'"' in data[lines.starts[number - 1] : lines.ends[number - 1]] for number in broken):
        return None  # a bad row with quotes may be part of a multi-line record: read exactly
    values = {column: table.column(by_name[column]).cast(pa.large_string()) for column in LANDING_COLUMNS}
    if not len(broken):
        return _frame(values, records, [None] * len(records))
    # Malformed rows go back among the others in line order.
    numbers = np.concatenate([records, broken])
    order = np.argsort(numbers, kind="stable")
    merged = {
        column: pa.concat_arrays([values[column].combine_chunks(), pa.nulls(len(broken), pa.large_string())]).take(
            order
        )
        for column in LANDING_COLUMNS
    }
    raw = [None] * len(records) + [lines.text(int(number)) for number in broken]
    return _frame(merged, numbers[order], [raw[index] for index in order])


class _RunAway(Exception):
    """A record's quoted field runs past the limits or to the end of the file."""


class _LineFeed:
    """Hands a csv reader one physical line at a time and stops a record that runs away."""

    def __init__(self, lines: PhysicalLines, first: int, limits: ParseLimits) -> None:
        self.lines = lines
        self.limits = limits
        self.next = first  # 1-based number of the line handed out next
        self.record = first  # first line of the record being read

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        lines, number = self.lines, self.next
        if number > len(lines):
            if number > self.record:
                raise _RunAway  # the file ended inside a quoted field
            raise StopIteration
        if number > self.record and (
            number - self.record >= self.limits.max_record_lines
            or lines.nexts[number - 2] - lines.starts[self.record - 1] >= self.limits.max_record_bytes
        ):
            raise _RunAway
        self.next += 1
        return lines.data[lines.starts[number - 1] : lines.nexts[number - 1]].decode("utf-8")


def _read_csv_exact(
    lines: PhysicalLines, header: int, raw_names: list[str], by_name: dict[str, str], limits: ParseLimits
) -> pd.DataFrame:
    """Record-by-record parse that follows quoted fields over lines; source_line is a record's
    first line. A run-away record is quarantined as its first line alone and reading resumes
    on the line after it."""
    csv.field_size_limit(max(csv.field_size_limit(), len(lines.data) + 1))  # only lines bound a field
    positions = [raw_names.index(by_name[column]) for column in LANDING_COLUMNS]
    values: list[list[str]] = []
    numbers: list[int] = []
    raw: list[str | None] = []
    feed = _LineFeed(lines, header + 1, limits)
    while feed.record <= len(lines):
        try:
            for fields in csv.reader(feed):
                first, last = feed.record, feed.next - 1
                feed.record = feed.next
                if first == last and lines.blank[first - 1]:
                    continue
                numbers.append(first)
                if len(fields) == len(raw_names):
                    values.append([fields[position] for position in positions])
                    raw.append(None)
                else:
                    values.append([""] * len(LANDING_COLUMNS))
                    raw.append(lines.text(first, last))
            break
        except _RunAway:
            first = feed.record
            numbers.append(first)
            values.append([""] * len(LANDING_COLUMNS))
            raw.append(lines.text(first))
            feed.record = feed.next = first + 1
    columns = {
        column: pa.array(
            [None if line is not None else row[index] for row, line in zip(values, raw, strict=True)], pa.large_string()
        )
        for index, column in enumerate(LANDING_COLUMNS)
    }
    return _frame(columns, np.asarray(numbers, dtype="int64"), raw)


def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    """Typed columns are rendered as the text a CSV would carry (a timestamp sale_date as its day);
    source_line is the row's number in the file (the first row is 1)."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as error:  # pyarrow raises several types for non-Parquet bytes
        raise reject("unreadable", f"{name}: not a readable Parquet file ({excerpt(str(error))})") from None
    by_name = _landing_names(table.column_names, name)
    values = {column: _as_text(table.column(by_name[column]), column, name) for column in LANDING_COLUMNS}
    return _frame(values, np.arange(1, table.num_rows + 1), [None] * table.num_rows)


def _as_text(column: pa.ChunkedArray, landing_column: str, name: str) -> pa.ChunkedArray:
    """A typed Parquet column as the strings a CSV would hold; nulls become empty."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = column.cast(pa.large_string())
        except pa.ArrowInvalid:
            raise reject("bad_encoding", f"{name}: column {landing_column} is not UTF-8 text") from None
    elif pa.types.is_timestamp(kind) and landing_column == "sale_date":
        local = pc.local_timestamp(column) if kind.tz else column  # the day on the wall clock
        column = local.cast(pa.date32())
    elif pa.types.is_floating(kind):
        return _floats_as_text(column)
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise reject("unreadable", f"{name}: column {landing_column} has type {kind}, not a landing type") from None
    return column.cast(pa.large_string()).fill_null("")


def _floats_as_text(column: pa.ChunkedArray) -> pa.Array:
    return pa.array([float_text(value) for value in column.to_pylist()], pa.large_string())
