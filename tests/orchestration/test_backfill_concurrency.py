"""A backfill runs its days concurrently on one Dask cluster: real Prefect API, real LocalCluster.

Each day stays its own subflow run (a child of the backfill's run) with its own manifest; a
failed day stops no other; progress counts days as they finish."""

from __future__ import annotations

import json
import threading
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, LogFilter, LogFilterFlowRunId

from retail_etl.synth.generate import generate_day

DAYS = ["2024-02-01", "2024-02-02", "2024-02-03", "2024-02-04"]


@pytest.fixture
def on_cluster(dask_address, monkeypatch):
    """The backfill's own runner on the session's cluster (as a deployment run gets it from settings)."""
    monkeypatch.setenv("RETAIL_ETL_DASK_ADDRESS", dask_address)


def children(parent_id: UUID) -> list:
    """The backfill run's subflow runs, in start order."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )
    return sorted(runs, key=lambda run: run.start_time)


def overlapping(runs: list) -> bool:
    """Whether any run started before the one started before it had ended."""
    return any(later.start_time < earlier.end_time for earlier, later in zip(runs, runs[1:], strict=False))


def messages(flow_run_id: UUID) -> list[str]:
    """The run's log lines as the API has them (after shipping what this process buffered)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.instance().drain()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_a_failed_day_stops_no_other_and_is_listed(on_cluster, tmp_dirs):
    from retail_etl.orchestration.flows import backfill

    landing, warehouse = tmp_dirs
    for seed, day in enumerate(DAYS):
        generate_day(landing, day, rows=600, stores=2, seed=seed, bad_files=1 if day == DAYS[2] else 0)
    state = backfill(
        start=DAYS[0],
        end=DAYS[-1],
        landing=str(landing),
        warehouse=str(warehouse),
        strict=True,  # the unreadable file fails its day
        concurrency=2,
        return_state=True,
    )

    assert state.is_failed()
    assert "1 of 4 days failed: 2024-02-03" in state.message
    published = [day for day in DAYS if day != DAYS[2]]
    assert sorted(p.name for p in (warehouse / "manifests").iterdir() if p.is_file()) == [
        f"sale_date={day}.json" for day in published
    ]
    runs = children(state.state_details.flow_run_id)
    assert sorted(run.name for run in runs) == [f"daily-sales-etl-local {day}" for day in DAYS]
    by_name = {run.name.rsplit(" ", 1)[-1]: run for run in runs}
    for day in published:
        manifest = json.loads((warehouse / "manifests" / f"sale_date={day}.json").read_text())
        assert manifest["run_id"] == str(by_name[day].id) and manifest["rows_in"] == 600
        assert by_name[day].state.is_completed()
    assert by_name[DAYS[2]].state.is_failed()

    lines = messages(state.state_details.flow_run_id)
    progress = [line.split(" ")[1] for line in lines if line.startswith("day ")]
    assert progress == ["1/4", "2/4", "3/4", "4/4"]  # counted as days finish, whatever their date
    assert any(line.startswith("day ") and "2024-02-03 failed" in line for line in lines)


def test_days_overlap_up_to_the_concurrency(on_cluster, tmp_dirs, monkeypatch):
    """The subflow runs' own start and end times: with the setting at 1 one day after another, with
    the parameter at 2 two days at once (the parameter wins over the setting). In the second
    backfill another run holds the first day for a while: the second day runs meanwhile."""
    from datetime import timedelta

    from retail_etl.io.lease import day_lease
    from retail_etl.orchestration.flows import backfill

    landing, warehouse = tmp_dirs
    for seed, day in enumerate(DAYS[:2]):
        generate_day(landing, day, rows=600, stores=2, seed=seed)
    monkeypatch.setenv("RETAIL_ETL_BACKFILL_CONCURRENCY", "1")
    arguments = {"start": DAYS[0], "end": DAYS[1], "landing": str(landing), "warehouse": str(warehouse)}

    one = backfill(**arguments, return_state=True)
    held, release = threading.Event(), threading.Event()

    def hold_first_day() -> None:
        with day_lease(str(warehouse), {}, DAYS[0], "another-run", 60, timedelta(seconds=120)):
            held.set()
            release.wait(timeout=120)

    holder = threading.Thread(target=hold_first_day)
    holder.start()
    held.wait(timeout=30)
    threading.Timer(15, release.set).start()
    try:
        two = backfill(**arguments, concurrency=2, return_state=True)
    finally:
        release.set()
        holder.join()

    assert one.is_completed() and two.is_completed()
    assert [m.sale_date for m in two.result()] == DAYS[:2]  # date order, whichever finished first
    one_runs, two_runs = children(one.state_details.flow_run_id), children(two.state_details.flow_run_id)
    assert len(one_runs) == len(two_runs) == 2
    assert not overlapping(one_runs)
    assert overlapping(two_runs)
    first, second = sorted(two_runs, key=lambda run: run.name)
    assert second.end_time < first.end_time  # the second day did not wait for the held first one
    assert "2 days, 1 at a time" in messages(one.state_details.flow_run_id)
    assert "2 days, 2 at a time" in messages(two.state_details.flow_run_id)
