"""Parsing landing files: every row kept with its line number, unreadable files rejected."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retail_etl.core.parse import read_landing_bytes, reject
from retail_etl.errors import RejectedFile

HEADER = b"transaction_id,sale_date,store_id,region,product,quantity,unit_price"


def csv(*lines: bytes, newline: bytes = b"\n") -> bytes:
    return newline.join([HEADER, *lines]) + newline


def test_rows_keep_exact_strings_and_line_numbers():
    data = csv(b"t1,2024-01-15,S001,north, tea ,2,3.50", b'"t,2",2024-01-15,S001,north,"cafe, large",1,4')
    frame = read_landing_bytes(data, "S001.csv")
    assert frame["transaction_id"].tolist() == ["t1", "t,2"]
    assert frame["product"].tolist() == [" tea ", "cafe, large"]
    assert frame["source_line"].tolist() == [2, 3]
    assert frame["raw_line"].isna().all()


def test_malformed_and_blank_lines_are_numbered_physically():
    data = csv(
        b"t1,2024-01-15,S001,north,tea,2,3.50",
        b"",
        b"t2,2024-01-15,S001",
        b"",
        b"t3,2024-01-15,S001,north,tea,2,3.50,EXTRA",
        b"t4,2024-01-15,S001,north,tea,1,1",
    )
    frame = read_landing_bytes(data, "S001.csv")
    assert frame["source_line"].tolist() == [2, 4, 6, 7]
    assert frame["raw_line"].tolist()[1:3] == ["t2,2024-01-15,S001", "t3,2024-01-15,S001,north,tea,2,3.50,EXTRA"]
    assert frame["transaction_id"].tolist()[3] == "t4"


def test_crlf_and_utf8_bom_are_accepted():
    data = b"\xef\xbb\xbf" + csv(b"t1,2024-01-15,S001,north,caf\xc3\xa9,2,3.50", b"", b"t2,x", newline=b"\r\n")
    frame = read_landing_bytes(data, "S001.csv")
    assert frame["product"].tolist()[0] == "café"
    assert frame["source_line"].tolist() == [2, 4]


def test_columns_in_another_order_and_extra_columns():
    data = b"unit_price,quantity,product,region,store_id,sale_date,transaction_id,note\n3.5,2,tea,north,S1,2024-01-15,t1,hi\n"
    frame = read_landing_bytes(data, "S1.csv")
    assert frame.loc[0, "unit_price"] == "3.5" and frame.loc[0, "transaction_id"] == "t1"
    assert "note" not in frame.columns


def test_header_only_file_has_no_rows():
    assert len(read_landing_bytes(HEADER + b"\n", "S1.csv")) == 0


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "S1.csv", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00garbage", "S1.csv", "unreadable"),
        (
            "transaction_id,sale_date,store_id,region,product,quantity,unit_price\nt1,2024-01-15,S1,north,café,1,2\n".encode(
                "latin-1"
            ),
            "S1.csv",
            "bad_encoding",
        ),
        (b"transaction_id;sale_date;store_id\n", "S1.csv", "missing_columns"),
        (b'{"transaction_id": "t1"}\n', "S1.csv", "missing_columns"),
        (b"not parquet at all", "S1.parquet", "unreadable"),
        (b"a,b\n1,2\n", "S1.xlsx", "unsupported_file_type"),
    ],
)
def test_unreadable_files_are_rejected_with_a_reason(data, name, reason):
    with pytest.raises(RejectedFile) as caught:
        read_landing_bytes(data, name)
    assert caught.value.reason == reason


def test_parquet_landing_values_become_text():
    table = pa.table(
        {
            "transaction_id": ["t1", "t2"],
            "sale_date": ["2024-01-15", None],
            "store_id": ["S1", "S1"],
            "region": ["north", "north"],
            "product": ["tea", "tea"],
            "quantity": [2, 3],
            "unit_price": [3.5, 1.25],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    frame = read_landing_bytes(sink.getvalue(), "S1.parquet")
    assert frame["quantity"].tolist() == ["2", "3"]
    assert frame["unit_price"].tolist() == ["3.5", "1.25"]
    assert frame["sale_date"].tolist() == ["2024-01-15", ""]
    assert frame["source_line"].tolist() == [1, 2]


def test_parquet_missing_columns_is_rejected():
    sink = io.BytesIO()
    pq.write_table(pa.table({"transaction_id": ["t1"]}), sink)
    with pytest.raises(RejectedFile, match="missing_columns"):
        read_landing_bytes(sink.getvalue(), "S1.parquet")


def test_rejected_file_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(RejectedFile("bad_encoding", "x.csv")))
    assert (error.reason, error.detail) == ("bad_encoding", "x.csv")


def test_header_names_ignore_case_and_surrounding_spaces():
    data = b"Transaction_ID, sale_date ,STORE_ID,region,product,quantity,unit_price\nt1,2024-01-15,S1,north,tea,1,2\n"
    frame = read_landing_bytes(data, "S1.csv")
    assert frame[["transaction_id", "sale_date", "store_id"]].values.tolist() == [["t1", "2024-01-15", "S1"]]


def test_duplicate_header_columns_are_rejected():
    data = HEADER + b",quantity\nt1,2024-01-15,S1,north,tea,1,2,3\n"
    with pytest.raises(RejectedFile, match="twice"):
        read_landing_bytes(data, "S1.csv")


def test_utf16_is_a_bad_encoding():
    with pytest.raises(RejectedFile) as caught:
        read_landing_bytes(csv(b"t1,2024-01-15,S1,north,tea,1,2").decode().encode("utf-16"), "S1.csv")
    assert caught.value.reason == "bad_encoding"


def test_quoted_newlines_and_unterminated_quotes_keep_exact_lines():
    data = csv(
        b't1,2024-01-15,S1,north,"tea',
        b'bag",1,2',
        b"t2,2024-01-15,S1,north,tea,1,2",
        b"",
        b't3,2024-01-15,S1,north,"tea,1,2',
    )
    frame = read_landing_bytes(data, "S1.csv")
    assert frame["transaction_id"].tolist()[:2] == ["t1", "t2"]
    assert frame["product"].tolist()[0] == "tea\nbag"
    assert frame["source_line"].tolist() == [2, 4, 6]
    assert frame["raw_line"].tolist()[2] == 't3,2024-01-15,S1,north,"tea,1,2'


def test_rejection_reasons_come_from_the_contract():
    with pytest.raises(ValueError, match="not a file rejection reason"):
        reject("looks_odd", "x.csv")
    assert isinstance(reject("empty_file", "x.csv"), RejectedFile)
