"""Synthetic landing data: one CSV per store and day, with realistic bad rows.

The same seed always gives the same bytes, and `GeneratedDay` says exactly
which bad rows were injected, so tests can check the pipeline's accounting.

>>> import tempfile
>>> day = generate_day(tempfile.mkdtemp(), "2024-01-15", rows=1000, stores=4, bad_fraction=0.05, seed=1)
>>> day.rows, len(day.files), sum(day.injected.values()) > 40
(1000, 4, True)
"""

from __future__ import annotations

import io
import posixpath
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contract.columns import LANDING_COLUMNS, ROW_REASONS
from ..contract.layout import day_partition
from ..io.storage import Location, location, write_bytes

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
PRODUCTS: dict[str, float] = {
    "coffee-beans": 12.5,
    "green-tea": 6.0,
    "olive-oil": 9.9,
    "cheddar": 7.4,
    "sourdough": 4.2,
    "headphones": 79.0,
    "desk-lamp": 34.0,
    "running-shoes": 120.0,
    "backpack": 65.0,
    "espresso-machine": 420.0,
}
#: Row-level defects the generator can inject (duplicates are added on top).
DEFECTS: tuple[str, ...] = tuple(reason for reason in ROW_REASONS if reason != "duplicate_transaction")
BAD_FILE_KINDS: tuple[str, ...] = ("binary_garbage", "latin1_encoding", "missing_columns")


@dataclass
class GeneratedDay:
    """What was written, and which defects went in (by quarantine reason)."""

    sale_date: str
    rows: int = 0
    files: list[str] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)
    injected: Counter = field(default_factory=Counter)


def store_ids(stores: int) -> list[str]:
    return [f"S{number:03d}" for number in range(1, stores + 1)]


def region_of(store: str) -> str:
    return REGIONS[(int(store[1:]) - 1) % len(REGIONS)]


def _split_rows(rows: int, stores: int) -> list[int]:
    base, extra = divmod(rows, stores)
    return [base + (1 if index < extra else 0) for index in range(stores)]


def _clean_rows(rng: np.random.Generator, sale_date: str, store: str, count: int) -> pd.DataFrame:
    names = np.array(list(PRODUCTS))
    picks = rng.integers(0, len(names), count)
    base = np.array(list(PRODUCTS.values()))[picks]
    prices = np.round(base * rng.lognormal(0.0, 0.15, count), 2).clip(0.01)
    quantity = rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 12], count)
    serial = pd.Series(np.arange(1, count + 1)).astype("str").str.zfill(7)
    return pd.DataFrame(
        {
            "transaction_id": f"T{sale_date.replace('-', '')}-{store}-" + serial,
            "sale_date": sale_date,
            "store_id": store,
            "region": region_of(store),
            "product": names[picks],
            "quantity": pd.Series(quantity).astype("str"),
            "unit_price": pd.Series(prices).map("{:.2f}".format),
        }
    ).astype("str")


_BAD_VALUES: dict[str, tuple[str, list[str]]] = {
    "bad_date": ("sale_date", ["2024-13-45", "15/01/2024", "yesterday", "2024-02-30"]),
    "bad_quantity": ("quantity", ["0", "-2", "three", "2.5", "250000"]),
    "bad_price": ("unit_price", ["-4.99", "0", "free", "1e9", "NaN"]),
    "bad_region": ("region", ["r" * 65, "région-" * 10]),
    "unknown_region": ("region", ["atlantis", "mars"]),
}


def _inject(
    rng: np.random.Generator, frame: pd.DataFrame, bad_fraction: float, sale_date: str, injected: Counter
) -> dict[int, str]:
    """Spoil some rows in place; returns row -> raw text for malformed lines."""
    count = len(frame)
    bad = int(round(count * bad_fraction))
    duplicates = max(1, bad // 10) if bad else 0
    if bad + duplicates >= count:
        raise ValueError("bad_fraction leaves no clean rows to duplicate")
    chosen = rng.permutation(np.arange(count - duplicates))[:bad]
    kinds = [DEFECTS[index % len(DEFECTS)] for index in range(bad)]
    malformed: dict[int, str] = {}
    for row, kind in zip(chosen.tolist(), kinds, strict=True):
        injected[kind] += 1
        if kind == "malformed_row":
            fields = frame.iloc[row].tolist()
            malformed[row] = ",".join(fields[:4]) if row % 2 else ",".join([*fields, "EXTRA"])
        elif kind == "missing_field":
            frame.iat[row, int(rng.integers(0, len(LANDING_COLUMNS)))] = ""
        elif kind == "date_mismatch":
            frame.at[row, "sale_date"] = (date.fromisoformat(sale_date) - timedelta(days=1)).isoformat()
        else:
            column, values = _BAD_VALUES[kind]
            frame.at[row, column] = values[row % len(values)]
    spoiled = set(chosen.tolist())
    sources = [row for row in range(count - duplicates) if row not in spoiled][:duplicates]
    for offset, source in enumerate(sources):
        frame.iloc[count - duplicates + offset] = frame.iloc[source]
        injected["duplicate_transaction"] += 1
    return malformed


def _csv_bytes(frame: pd.DataFrame, malformed: dict[int, str]) -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    data = sink.getvalue()
    if not malformed:
        return data
    lines = data.split(b"\n")
    for row, text in malformed.items():
        lines[row + 1] = text.encode()
    return b"\n".join(lines)


def _bad_file(kind: str, rng: np.random.Generator, sale_date: str) -> bytes:
    if kind == "binary_garbage":
        return b"\x89PNG\r\n\x1a\n\x00\x00" + rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    if kind == "latin1_encoding":
        header = ",".join(LANDING_COLUMNS)
        return f"{header}\nT1,{sale_date},S999,north,café crème,1,3.20\n".encode("latin-1")
    return f"transaction_id,sale_date,amount\nT1,{sale_date},9.99\n".encode()


def generate_day(
    out: str | Location,
    sale_date: str | date,
    rows: int,
    stores: int,
    bad_fraction: float = 0.0,
    seed: int = 0,
    bad_files: int = 0,
    file_format: str = "csv",
    progress: Callable[[str], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> GeneratedDay:
    """Write `<out>/sales/sale_date=D/<store>.<format>` for every store."""
    if rows < 0 or stores < 1 or not 0 <= bad_fraction < 0.5:
        raise ValueError("need rows >= 0, stores >= 1 and 0 <= bad_fraction < 0.5")
    if file_format not in ("csv", "parquet"):
        raise ValueError("file_format must be csv or parquet")
    sale_date = str(sale_date)
    target = out if isinstance(out, Location) else location(out, options)
    folder = target.join("sales", day_partition(sale_date))
    day = GeneratedDay(sale_date=sale_date)
    rng = np.random.default_rng(seed)
    for store, count in zip(store_ids(stores), _split_rows(rows, stores), strict=True):
        frame = _clean_rows(rng, sale_date, store, count)
        malformed = _inject(rng, frame, bad_fraction, sale_date, day.injected) if count else {}
        path = posixpath.join(folder, f"{store}.{file_format}")
        if file_format == "csv":
            write_bytes(target.fs, path, _csv_bytes(frame, malformed))
        else:
            # Parquet cannot hold a malformed line; keep those rows clean.
            day.injected["malformed_row"] -= len(malformed)
            sink = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
            write_bytes(target.fs, path, sink.getvalue())
        day.rows += count
        day.files.append(target.url_of(path))
        if progress:
            progress(store)
    for index in range(bad_files):
        kind = BAD_FILE_KINDS[index % len(BAD_FILE_KINDS)]
        path = posixpath.join(folder, f"X{index + 1:02d}-{kind}.csv")
        write_bytes(target.fs, path, _bad_file(kind, rng, sale_date))
        day.bad_files.append(target.url_of(path))
    day.injected = +day.injected
    return day
