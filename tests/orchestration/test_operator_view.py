"""What an operator and an analyst see of a run: its name, tags, artifacts and the manifest's
lineage (build and environment), on real runs against a real Prefect API and Dask cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.states import Scheduled

from retail_etl.synth.generate import generate_day

DAY = "2024-01-15"


@pytest.fixture
def staging(monkeypatch):
    """This process is staging's flow-run pod, running build abc1234."""
    monkeypatch.setenv("RETAIL_ETL_ENVIRONMENT", "staging")
    monkeypatch.setenv("RETAIL_ETL_BUILD", "abc1234")


def flow_run(run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def artifacts_of(run_id: str) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
    return {artifact.key: artifact for artifact in found}


def test_run_names_its_environment_day_and_build(run_day, tmp_dirs, staging):
    landing, warehouse = tmp_dirs
    generate_day(landing, DAY, rows=600, stores=3, bad_fraction=0.02, seed=11)
    manifest = run_day(DAY, landing, warehouse)

    assert (manifest.build, manifest.environment) == ("abc1234", "staging")
    stored = json.loads((warehouse / "manifests" / f"sale_date={DAY}.json").read_text())
    assert (stored["build"], stored["environment"]) == ("abc1234", "staging")
    assert stored["retail_etl_version"]  # kept for readers of earlier manifests

    run = flow_run(manifest.run_id)
    assert run.name == f"daily-sales-etl-staging {DAY}"
    assert {"env:staging", f"run-date:{DAY}"} <= set(run.tags)
    assert run.flow_version == "abc1234"

    artifacts = artifacts_of(manifest.run_id)
    assert set(artifacts) == {
        "retail-etl-region-figures-staging",
        "retail-etl-quarantine-staging",
        "retail-etl-housekeeping-staging",  # the first run of a warehouse housekeeps it
    }
    figures, quarantine = artifacts["retail-etl-region-figures-staging"], artifacts["retail-etl-quarantine-staging"]
    assert DAY in figures.description and "staging" in figures.description and "abc1234" in figures.description
    assert "in staging" in quarantine.data and "`abc1234`" in quarantine.data


def test_scheduled_run_without_parameters_resolves_names_and_tags_its_day(dask_address, tmp_dirs, staging):
    """A scheduled run has parameters {}: the day before its scheduled time is its run date, in its
    name and tags. The run is created Scheduled and executed as a worker executes it."""
    from prefect.flow_engine import run_flow
    from prefect_dask import DaskTaskRunner

    from retail_etl.orchestration.flows import daily_sales_etl

    landing, warehouse = tmp_dirs
    flow = daily_sales_etl.with_options(task_runner=DaskTaskRunner(address=dask_address))
    parameters = {"landing": str(landing), "warehouse": str(warehouse), "allow_empty": True}
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(
            flow, parameters=parameters, state=Scheduled(scheduled_time=datetime(2024, 1, 16, 6, 0, tzinfo=UTC))
        )
    manifest = run_flow(flow, flow_run=created, parameters=parameters)

    assert manifest.sale_date == DAY
    run = flow_run(str(created.id))
    assert run.name == f"daily-sales-etl-staging {DAY}"
    assert f"run-date:{DAY}" in run.tags
    assert "run_date" not in run.parameters


def test_backfill_and_its_days_are_named_by_environment_and_date(dask_address, tmp_dirs, monkeypatch):
    from retail_etl.orchestration.flows import backfill

    landing, warehouse = tmp_dirs
    monkeypatch.setenv("RETAIL_ETL_DASK_ADDRESS", dask_address)
    monkeypatch.setenv("RETAIL_ETL_ENVIRONMENT", "dev")
    state = backfill(
        start="2024-01-01",
        end="2024-01-02",
        landing=str(landing),
        warehouse=str(warehouse),
        allow_empty=True,
        return_state=True,
    )
    assert state.is_completed()
    parent = flow_run(str(state.state_details.flow_run_id))
    assert parent.name == "backfill-dev 2024-01-01..2024-01-02"
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
    assert sorted(child.name for child in children) == [
        "daily-sales-etl-dev 2024-01-01",
        "daily-sales-etl-dev 2024-01-02",
    ]
    assert all({"env:dev"} <= set(child.tags) for child in children)


def test_build_id_is_the_images_stamp_else_the_local_version(monkeypatch):
    from retail_etl import __version__
    from retail_etl.build import build_id

    monkeypatch.setenv("RETAIL_ETL_BUILD", "abc1234")
    assert build_id() == "abc1234"
    monkeypatch.setenv("RETAIL_ETL_BUILD", "")  # an image built without --build-arg
    assert build_id() == f"{__version__}+local"
    monkeypatch.delenv("RETAIL_ETL_BUILD")
    assert build_id() == f"{__version__}+local"
