"""A batch of landing files into raw rows and verdicts: parse problems are verdicts, bounded and escaped."""

from __future__ import annotations

import pytest

from retail_etl.core import extraction
from retail_etl.core.extraction import DETAIL_CHARS, VERDICTS, LandingBytes, extract_files, split_verdicts
from retail_etl.core.parse import RAW_COLUMNS

HEADER = b"transaction_id,sale_date,store_id,region,product,quantity,unit_price\n"


def store(name: str, rows: int) -> LandingBytes:
    body = b"".join(b"%s-%d,2024-01-15,S1,north,tea,2,3.50\n" % (name.encode(), i) for i in range(rows))
    return LandingBytes(f"/landing/{name}", name, HEADER + body)


def test_rows_of_every_readable_file_in_order_with_a_verdict_per_file():
    sources = [store("S1.csv", 2), LandingBytes("/landing/S2.csv", "S2.csv", b""), store("S3.csv", 3)]
    sources.append(LandingBytes("/landing/notes.txt", "notes.txt", None))
    batch = extract_files(sources)
    frame, verdicts = split_verdicts(batch)
    assert list(frame.columns) == [*RAW_COLUMNS, "source_file"]
    assert frame["source_file"].tolist() == ["/landing/S1.csv"] * 2 + ["/landing/S3.csv"] * 3
    assert [(v.rows, v.reason) for v in verdicts] == [
        (2, None),
        (0, "empty_file"),
        (3, None),
        (0, "unsupported_file_type"),
    ]
    assert frame.attrs == {} and len(batch.attrs[VERDICTS]) == 4  # the batch itself is left as it is


def test_a_batch_of_rejected_files_only_is_an_empty_frame_of_raw_rows():
    frame = extract_files([LandingBytes("/landing/S2.csv", "S2.csv", b"")])
    assert len(frame) == 0 and list(frame.columns) == [*RAW_COLUMNS, "source_file"]
    assert frame["source_line"].dtype == "int64"


def test_a_memory_error_is_not_a_verdict(monkeypatch):
    def out_of_memory(data, name, limits):
        raise MemoryError

    monkeypatch.setattr(extraction, "read_landing_bytes", out_of_memory)
    with pytest.raises(MemoryError):
        extract_files([store("S1.csv", 1)])


def test_rejection_details_from_the_parser_are_bounded_and_escaped_too():
    _, (verdict,) = split_verdicts(extract_files([LandingBytes("/l/S1.csv", "S1.csv", b"\xff\xfe" + b"x\n" * 500)]))
    assert verdict.reason == "bad_encoding" and verdict.detail.isprintable() and len(verdict.detail) <= DETAIL_CHARS
