"""One build per environment: a run whose Dask workers were stamped with another build stops
before it touches the day (an environment promoted halfway), with one line naming them."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster
from prefect_dask import DaskTaskRunner

from retail_etl.errors import SplitBuild
from retail_etl.orchestration.flows import daily_sales_etl
from retail_etl.orchestration.platform import worker_environment
from retail_etl.orchestration.same_build import check_same_build
from retail_etl.synth.generate import generate_day

DAY = "2024-01-15"


@pytest.fixture(scope="module")
def build_b_workers(prefect_api):
    """A real LocalCluster whose worker processes run build `build-b`."""
    env = {**worker_environment(), "RETAIL_ETL_BUILD": "build-b"}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, env=env, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_workers_of_the_same_build_or_unstamped_pass(build_b_workers, dask_address):
    with Client(build_b_workers) as client:
        check_same_build(client, "build-b")
    with Client(dask_address) as client:  # the session's workers carry no stamp: nothing to compare
        check_same_build(client, "build-a")


def test_a_run_on_workers_of_another_build_stops_before_the_day(build_b_workers, tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIL_ETL_BUILD", "build-a")
    generate_day(tmp_path / "landing", DAY, rows=200, stores=2, seed=1)
    flow = daily_sales_etl.with_options(task_runner=DaskTaskRunner(address=build_b_workers))
    with pytest.raises(SplitBuild, match=r"another build than this flow run \(build-a\): tcp://.* runs build-b;"):
        flow(run_date=DAY, landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "warehouse"))
    assert not (tmp_path / "warehouse").exists()
