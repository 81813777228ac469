"""The result serializer: a cached batch comes back with its rows and its verdicts."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from retail_etl.core.extraction import LandingBytes, extract_files, split_verdicts
from retail_etl.core.parse import ParseLimits
from retail_etl.io.landing import LandingFile
from retail_etl.orchestration.results import ParquetSerializer, batch_cache_key

HEADER = b"transaction_id,sale_date,store_id,region,product,quantity,unit_price\n"


def test_verdicts_survive_the_parquet_round_trip():
    good = LandingBytes("/l/S1.csv", "S1.csv", HEADER + b"t1,2024-01-15,S1,north,tea,2,3.50\n")
    frame = extract_files([good, LandingBytes("/l/S2.csv", "S2.csv", b"\x00\x01binary")])
    _, expected = split_verdicts(frame)
    serializer = ParquetSerializer()
    blob = serializer.dumps(frame)
    assert pq.read_table(io.BytesIO(blob)).num_rows == 1  # still plain Parquet
    back = serializer.loads(blob)
    assert back["source_file"].tolist() == ["/l/S1.csv"]
    assert split_verdicts(back)[1] == expected
    assert [v.reason for v in expected] == [None, "unreadable"]


def test_the_batch_cache_key_covers_every_file_and_the_parse_limits():
    files = [LandingFile(url=f"/l/S{i}.csv", name=f"S{i}.csv", identity={"size": 10, "ctime_ns": i}) for i in range(3)]
    limits = ParseLimits()

    def key(batch, limits=limits):
        return batch_cache_key(batch, limits)

    changed = [*files[:2], files[2].model_copy(update={"identity": {"size": 10, "ctime_ns": 99}})]
    assert key(files) == key(list(files))
    assert len({key(files), key(changed), key(files[:2]), key(files, ParseLimits(max_record_lines=5))}) == 4
