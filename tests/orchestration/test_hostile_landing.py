"""A landing day that no generator of ours writes: every hostile shape at once, on disk and on S3.

Each file below is one case of the landing contract (README, "Landing"); the expected manifest
is written out by hand from that contract.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from deltalake import DeltaTable

from retail_etl.io.delta import delta_options

DAY = "2024-01-15"
HEADER = "transaction_id,sale_date,store_id,region,product,quantity,unit_price"


def rows(prefix: str, count: int, start: int = 1) -> list[str]:
    return [f"{prefix}{n},{DAY},S1,north,tea,1,2.00" for n in range(start, start + count)]


def parquet_day() -> bytes:
    table = pa.table(
        {
            "transaction_id": ["pq1", "pq2"],
            "sale_date": pa.array([datetime(2024, 1, 15, 9, 30), datetime(2024, 1, 15)], pa.timestamp("ms")),
            "store_id": ["S9", "S9"],
            "region": ["south", "south"],
            "product": ["tea", "tea"],
            "quantity": pa.array([2, 3], pa.int64()),
            "unit_price": pa.array([1.25, 2.0]),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def hostile_day() -> dict[str, bytes]:
    """File name -> bytes. Expected figures are in `test_every_hostile_file_is_handled`."""
    lines = "\n".join
    return {
        # 3 rows, old Mac line endings
        "a_cr_only.csv": "\r".join([HEADER, *rows("cr", 3)]).encode() + b"\r",
        # a 200,000-character field next to a quoted newline: 2 rows
        "b_long_field.csv": lines(
            [HEADER, f'lf1,{DAY},S1,north,"{"x" * 200_000}",1,2', f'lf2,{DAY},S1,north,"tea\nbag",1,2']
        ).encode(),
        # invalid UTF-8 in an ignored column, plus a quoted newline: rejected, bad_encoding
        "c_latin1_note.csv": (HEADER + ",note\n").encode()
        + f'ln1,{DAY},S1,north,"a\nb",1,2,ok\n'.encode()
        + f"ln2,{DAY},S1,north,tea,1,2,caf".encode()
        + b"\xe9\n",
        # a 300-character region: 1 bad_region, 1 published
        "d_long_region.csv": lines([HEADER, *rows("lr", 1), f"lr2,{DAY},S1,{'r' * 300},tea,1,2"]).encode(),
        # U+2028 and a form feed inside fields; line 5 malformed
        "e_odd_chars.csv": lines(
            [HEADER, f"oc1,{DAY},S1,north,te\u2028a,1,2", f"oc2,{DAY},S1,north,te\x0ca,1,2", *rows("oc", 1, 3), "oc4,x"]
        ).encode(),
        # an unclosed quote on line 2, then 1,000 valid rows: 1,001 rows, 1 malformed
        "f_unclosed.csv": lines([HEADER, f'uq0,{DAY},S1,north,"tea,1,2', *rows("uq", 1000)]).encode(),
        # exact numbers: 2 bad_quantity, 1 bad_price, 1 published with total 1.01
        "g_numbers.csv": lines(
            [
                HEADER,
                f"nb1,{DAY},S1,north,tea,2.00000000000000001,2",
                f"nb2,{DAY},S1,north,tea,10000.0000000000001,2",
                f"nb3,{DAY},S1,north,tea,1,100000.000000000001",
                f"nb4,{DAY},S1,north,tea,3,0.335",
            ]
        ).encode(),
        # typed Parquet: timestamp sale_date, integer quantity, float price: 2 rows
        "h_typed.parquet": parquet_day(),
        # header only, no newline: accepted, 0 rows
        "i_header_only.csv": HEADER.encode(),
        # a NUL byte after the first 64 KiB: rejected, unreadable
        "j_late_nul.csv": lines([HEADER, *rows("nul", 3000), "nul0,x\x00y"]).encode(),
        # lines of spaces and tabs are blank: 2 rows
        "k_blank_lines.csv": lines([HEADER, *rows("bl", 1), "   ", "\t", *rows("bl", 1, 2), " \t "]).encode(),
    }


def published_total(curated: pd.DataFrame, transaction_id: str) -> float:
    return float(curated.loc[curated["transaction_id"] == transaction_id, "total"].iloc[0])


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_every_hostile_file_is_handled(where, run_day, tmp_path, request):
    if where == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        root = request.getfixturevalue("s3_bucket")
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
        options = {"endpoint_url": endpoint}
    else:
        root, fs, options = str(tmp_path), None, {}
    landing, warehouse = f"{root}/landing", f"{root}/warehouse"
    for name, data in hostile_day().items():
        path = f"{landing}/sales/sale_date={DAY}/{name}"
        if fs is None:
            (tmp_path / "landing" / "sales" / f"sale_date={DAY}").mkdir(parents=True, exist_ok=True)
            (tmp_path / "landing" / "sales" / f"sale_date={DAY}" / name).write_bytes(data)
        else:
            fs.pipe(path.removeprefix("s3://"), data)

    manifest = run_day(DAY, landing, warehouse)

    rejected = {entry.file.rsplit("/", 1)[-1]: entry for entry in manifest.files_rejected}
    assert {name: entry.reason for name, entry in rejected.items()} == {
        "c_latin1_note.csv": "bad_encoding",
        "j_late_nul.csv": "unreadable",
    }
    assert "line 4" in rejected["c_latin1_note.csv"].detail and "line 3002" in rejected["j_late_nul.csv"].detail
    accepted = {entry.file.rsplit("/", 1)[-1]: entry.rows for entry in manifest.files_accepted}
    assert accepted == {
        "a_cr_only.csv": 3,
        "b_long_field.csv": 2,
        "d_long_region.csv": 2,
        "e_odd_chars.csv": 4,
        "f_unclosed.csv": 1001,
        "g_numbers.csv": 4,
        "h_typed.parquet": 2,
        "i_header_only.csv": 0,
        "k_blank_lines.csv": 2,
    }
    assert manifest.quarantine_reasons == {"malformed_row": 2, "bad_quantity": 2, "bad_price": 1, "bad_region": 1}
    assert manifest.rows_in == 1020 and manifest.rows_published == 1014 and manifest.rows_quarantined == 6

    storage = delta_options(options) if options else None
    curated = DeltaTable(f"{warehouse}/curated/sales", storage_options=storage).to_pandas()
    quarantine = DeltaTable(f"{warehouse}/quarantine/sales", storage_options=storage).to_pandas()
    assert published_total(curated, "nb4") == 1.01
    assert curated.loc[curated["transaction_id"] == "lf1", "product"].str.len().tolist() == [200_000]
    assert sorted(curated.loc[curated["store_id"] == "S9", "transaction_id"]) == ["pq1", "pq2"]
    malformed = quarantine[quarantine["reason"] == "malformed_row"].set_index("source_line")["raw_line"].to_dict()
    assert malformed == {2: f'uq0,{DAY},S1,north,"tea,1,2', 5: "oc4,x"}
    assert quarantine.loc[quarantine["reason"] == "bad_region", "source_line"].tolist() == [3]

    if fs is None:  # no rejected file's bytes in anything Prefect persisted (results, cache keys)
        persisted = [path.read_bytes() for path in (tmp_path / "warehouse" / "_prefect").rglob("*") if path.is_file()]
        assert persisted
        assert not any(b"caf\xe9" in blob or b"x\x00y" in blob for blob in persisted)
    else:
        kept = json.loads(fs.cat_file(f"{warehouse}/manifests/sale_date={DAY}.json".removeprefix("s3://")))
        assert len(kept["files_rejected"]) == 2
