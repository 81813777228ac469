"""Housekeeping as part of the product: the first run published on a warehouse each day sweeps it
(what `retail-etl vacuum` does), says so in its log and an artifact, and never fails a day."""

from __future__ import annotations

import itertools
import os
import time
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from retail_etl.synth.generate import generate_day

DAY = "2024-01-15"
ENVIRONMENTS = (f"hk{n}" for n in itertools.count())


def artifacts_of(run_id: str) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
    return {artifact.key: artifact for artifact in found}


def expired_result(warehouse):
    """A task result written ten days ago, past the cache expiration (7 days): what a sweep removes."""
    result = warehouse / "_prefect" / "results" / "expired-result"
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_bytes(b"x" * 3 * 2**20)
    old = time.time() - 10 * 86400
    os.utime(result, (old, old))
    return result


def test_the_first_run_of_the_day_sweeps_the_warehouse_and_reports_it(run_day, tmp_dirs, monkeypatch):
    environment = next(ENVIRONMENTS)
    monkeypatch.setenv("RETAIL_ETL_ENVIRONMENT", environment)
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=300, stores=2, seed=5)
    swept = expired_result(warehouse)
    first = run_day(DAY, landing, warehouse)
    assert not swept.exists() and (warehouse / "_housekeeping" / "last-run").exists()
    report = artifacts_of(first.run_id)[f"retail-etl-housekeeping-{environment}"]
    assert "1 results (3.0 MiB)" in report.description and "3.0 MiB freed" in report.description
    assert "| results | 1 | 3.0 |" in report.data

    swept = expired_result(warehouse)
    second = run_day(DAY, landing, warehouse)  # the same day again: housekept already today
    assert swept.exists() and f"retail-etl-housekeeping-{environment}" not in artifacts_of(second.run_id)


def test_a_failing_housekeeping_never_fails_the_day(run_day, tmp_dirs, monkeypatch):
    environment = next(ENVIRONMENTS)
    monkeypatch.setenv("RETAIL_ETL_ENVIRONMENT", environment)
    monkeypatch.setenv("RETAIL_ETL_VACUUM_RETENTION", "1h")  # below the floor: the sweep is refused
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=300, stores=2, seed=6)
    manifest = run_day(DAY, landing, warehouse)
    assert manifest.rows_in == 300
    assert f"retail-etl-housekeeping-{environment}" not in artifacts_of(manifest.run_id)
