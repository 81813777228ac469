"""Parsing landing files: every row kept with its line number, unreadable files rejected."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retail_etl.core.parse import ParseLimits, read_landing_bytes, reject
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


ROW = b"t%d,2024-01-15,S1,north,tea,1,2"


def rows(*numbers: int) -> list[bytes]:
    return [ROW % number for number in numbers]


def test_cr_only_line_endings_are_lines():
    frame = read_landing_bytes(csv(*rows(1, 2), b"", b"t3,x", newline=b"\r"), "S1.csv")
    assert frame["source_line"].tolist() == [2, 3, 5]
    assert frame["raw_line"].tolist()[2] == "t3,x"


def test_only_lf_cr_and_crlf_end_lines():
    """Form feed, vertical tab, U+2028 and friends are characters of the line, as for any CSV reader."""
    odd = "t9,2024-01-15,S1,no\x0crth,te\x0ba,1\u2028,2\x1c".encode()
    frame = read_landing_bytes(csv(*rows(1, 2, 3), odd, b"t5,short"), "S1.csv")
    assert frame["source_line"].tolist() == [2, 3, 4, 5, 6]
    assert frame["region"].tolist()[3] == "no\x0crth"
    assert frame["raw_line"].tolist()[4] == "t5,short"


def test_lines_of_spaces_and_tabs_are_blank():
    frame = read_landing_bytes(csv(rows(1)[0], b"   ", b"\t \t", rows(2)[0], b" "), "S1.csv")
    assert frame["source_line"].tolist() == [2, 5]
    assert frame["raw_line"].isna().all()


def test_header_only_with_or_without_a_newline_is_a_day_without_sales():
    assert len(read_landing_bytes(HEADER, "S1.csv")) == 0
    assert len(read_landing_bytes(HEADER + b"\r\n\r\n  \n", "S1.csv")) == 0


def test_a_nul_byte_anywhere_rejects_the_file_naming_the_line():
    late = csv(*rows(*range(1, 20001)), b"t0,2024-01-15,S1,north,t\x00ea,1,2")
    assert len(late) > 65536
    with pytest.raises(RejectedFile) as caught:
        read_landing_bytes(late, "S1.csv")
    assert caught.value.reason == "unreadable" and "line 20002" in caught.value.detail


def test_invalid_utf8_anywhere_is_a_bad_encoding_naming_the_line():
    header = HEADER + b",note"
    data = b"\n".join([header, b't1,2024-01-15,S1,north,"tea\nbag",1,2,ok', b"t2,2024-01-15,S1,north,tea,1,2,caf\xe9"])
    with pytest.raises(RejectedFile) as caught:
        read_landing_bytes(data + b"\n", "S1.csv")
    assert caught.value.reason == "bad_encoding"
    assert "line 4" in caught.value.detail and "0xe9" in caught.value.detail
    assert len(caught.value.detail) < 200


def test_long_fields_and_quoted_newlines_together():
    long = b"x" * 200_000
    frame = read_landing_bytes(
        csv(b't1,2024-01-15,S1,north,"' + long + b'",1,2', b't2,2024-01-15,S1,north,"a\nb",1,2'), "S1.csv"
    )
    assert frame["product"].str.len().tolist() == [200_000, 3]
    assert frame["source_line"].tolist() == [2, 3]


def test_a_line_longer_than_a_parser_block_is_read():
    frame = read_landing_bytes(csv(b"t1,2024-01-15,S1,north," + b"y" * (17 << 20) + b",1,2", rows(2)[0]), "S1.csv")
    assert frame["transaction_id"].tolist() == ["t1", "t2"]


def test_an_unclosed_quote_costs_one_line_not_the_rest_of_the_file():
    data = csv(*rows(1, 2), b't3,2024-01-15,S1,north,"tea,1,2', *rows(*range(4, 1004)))
    frame = read_landing_bytes(data, "S1.csv")
    assert len(frame) == 1003
    assert frame["raw_line"].notna().sum() == 1
    assert frame.loc[frame["raw_line"].notna(), "source_line"].tolist() == [4]
    assert frame["source_line"].tolist() == list(range(2, 1005))


def test_a_quoted_field_may_span_lines_up_to_the_limit():
    spanning = [b't1,2024-01-15,S1,north,"line 0'] + [b"line %d" % i for i in range(1, 5)] + [b'end",1,2']
    data = csv(*spanning, rows(2)[0])
    frame = read_landing_bytes(data, "S1.csv", ParseLimits(max_record_lines=6))
    assert frame["transaction_id"].tolist() == ["t1", "t2"] and frame["source_line"].tolist() == [2, 8]
    tight = read_landing_bytes(data, "S1.csv", ParseLimits(max_record_lines=5))
    assert tight["source_line"].tolist()[:2] == [2, 3]  # the run-away line alone, then reading resumes
    assert tight["raw_line"].tolist()[0] == 't1,2024-01-15,S1,north,"line 0'
    assert tight["source_line"].tolist()[-1] == 8 and tight["transaction_id"].tolist()[-1] == "t2"
    by_bytes = read_landing_bytes(data, "S1.csv", ParseLimits(max_record_bytes=40))
    assert by_bytes["raw_line"].tolist()[0] == 't1,2024-01-15,S1,north,"line 0'


def test_a_malformed_multi_line_record_keeps_all_its_lines():
    data = csv(b't1,2024-01-15,S1,"north', b'east",tea,1', rows(2)[0])
    frame = read_landing_bytes(data, "S1.csv")
    assert frame["source_line"].tolist() == [2, 4]
    assert frame["raw_line"].tolist()[0] == 't1,2024-01-15,S1,"north\neast",tea,1'


def test_a_parser_failure_is_a_rejected_file_with_a_short_escaped_detail(monkeypatch):
    import retail_etl.core.parse as parse

    def explode(*args, **kwargs):
        raise ValueError("boom \x1b[31m" + "z" * 5000)

    monkeypatch.setattr(parse, "_read_csv", explode)
    with pytest.raises(RejectedFile) as caught:
        read_landing_bytes(csv(*rows(1)), "S1.csv")
    assert caught.value.reason == "unreadable"
    assert caught.value.detail.startswith("S1.csv: ValueError: boom \\x1b[31m")
    assert len(caught.value.detail) < 250 and caught.value.detail.isprintable()


def parquet_bytes(**columns) -> bytes:
    base = {
        "transaction_id": ["t1", "t2"],
        "sale_date": ["2024-01-15", "2024-01-15"],
        "store_id": ["S1", "S1"],
        "region": ["north", "north"],
        "product": ["tea", "tea"],
        "quantity": ["1", "2"],
        "unit_price": ["1", "2"],
    }
    sink = io.BytesIO()
    pq.write_table(pa.table({**base, **columns}), sink)
    return sink.getvalue()


def test_typed_parquet_columns_mean_what_they_say():
    from datetime import date, datetime
    from decimal import Decimal

    data = parquet_bytes(
        sale_date=pa.array([datetime(2024, 1, 15, 0, 0), datetime(2024, 1, 15, 23, 59)], pa.timestamp("us")),
        quantity=pa.array([2, 3], pa.int32()),
        unit_price=pa.array([Decimal("3.50"), Decimal("100000.000000001")], pa.decimal128(20, 9)),
        store_id=pa.array(["S1", "S1"]).dictionary_encode(),
        product=pa.array([b"tea", b"caf\xc3\xa9"], pa.binary()),
    )
    frame = read_landing_bytes(data, "S1.parquet")
    assert frame["sale_date"].tolist() == ["2024-01-15", "2024-01-15"]
    assert frame["quantity"].tolist() == ["2", "3"]
    assert frame["unit_price"].tolist() == ["3.500000000", "100000.000000001"]
    assert frame["store_id"].tolist() == ["S1", "S1"] and frame["product"].tolist() == ["tea", "café"]
    dates = read_landing_bytes(parquet_bytes(sale_date=pa.array([date(2024, 1, 15), None])), "S1.parquet")
    assert dates["sale_date"].tolist() == ["2024-01-15", ""]


def test_parquet_timestamps_with_a_zone_give_the_local_day():
    from datetime import UTC, datetime

    instants = pa.array([datetime(2024, 1, 15, 22, 30, tzinfo=UTC)] * 2, pa.timestamp("ms", tz="Asia/Tokyo"))
    frame = read_landing_bytes(parquet_bytes(sale_date=instants), "S1.parquet")
    assert frame["sale_date"].tolist() == ["2024-01-16", "2024-01-16"]  # 07:30 on the 16th in Tokyo


def test_parquet_floats_are_plain_decimals():
    frame = read_landing_bytes(
        parquet_bytes(unit_price=pa.array([1e-05, 2.0]), quantity=pa.array([2.0, float("nan")])), "S1.parquet"
    )
    assert frame["unit_price"].tolist() == ["0.00001", "2"]
    assert frame["quantity"].tolist() == ["2", ""]


def test_parquet_nested_column_is_rejected_with_its_type():
    with pytest.raises(RejectedFile, match="not a landing type"):
        read_landing_bytes(parquet_bytes(quantity=pa.array([[1], [2]])), "S1.parquet")
