"""Housekeeping next to runs in flight: what a run holding a day's lease needs stays."""

from __future__ import annotations

from datetime import timedelta

from retail_etl.io.housekeeping import remove_stale_scratch
from retail_etl.io.lease import day_lease, lease_holders


def test_scratch_of_a_run_holding_a_lease_stays_whatever_the_retention(tmp_path):
    warehouse = str(tmp_path / "warehouse")
    for run in ("in-flight", "finished"):
        (tmp_path / "warehouse" / "_staging" / run).mkdir(parents=True)
        (tmp_path / "warehouse" / "_staging" / run / "bucket-0.parquet").write_bytes(b"x")
    with day_lease(warehouse, None, "2024-01-15", "in-flight", wait_seconds=0):
        assert lease_holders(warehouse, None) == {"sale_date=2024-01-15": "in-flight"}
        removed = remove_stale_scratch(warehouse, None, timedelta(0))
    assert [path.rsplit("/", 1)[-1] for path in removed.paths] == ["finished"] and removed.bytes == 1
    assert (tmp_path / "warehouse" / "_staging" / "in-flight" / "bucket-0.parquet").exists()
    assert lease_holders(warehouse, None) == {}
