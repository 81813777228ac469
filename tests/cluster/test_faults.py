"""What a night can bring besides a clean run: the server restarted, the worker pod deleted, the
flow-run pod deleted mid-run, the flow's process killed mid-run, a Dask worker pod deleted mid-run. A published day stays entirely
the old or entirely the new one, and the next run publishes the landing's exact figures."""

from __future__ import annotations

import pytest
from clusterkit import kubectl, pods, replaced
from nights import deployment, expected_figures, flow_run, land, prefect_api, published_figures, start_run, wait_for_run

WAREHOUSE = "s3://warehouse-dev"
# SIGKILL every process of the container but its PID 1 (the supervisor, `prefect flow-run execute`)
KILL_ALL_BUT_PID_1 = (
    "import os, signal\n"
    "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
    "    if pid not in (1, os.getpid()): os.kill(pid, signal.SIGKILL)\n"
)
LARGER = 300_000  # rows: a run long enough (tens of seconds) for a fault to hit it mid-run


@pytest.fixture(scope="module")
def landings(cluster, first_run) -> dict:
    """Two landings of the day whose figures differ: what was published first, and a new one."""
    old = first_run["expected"]
    assert first_run["run"]["state"] == "COMPLETED", first_run["run"]
    new_landing = land(cluster["workdir"], seed=29)
    new = expected_figures(new_landing)
    assert new != old
    return {"old": old, "new": new}


def started_tasks(run: dict) -> bool:
    """The run is in the middle of its work: running, with a task run already finished."""
    return run["state"] == "RUNNING" and "COMPLETED" in run["tasks"]


def test_the_server_restart_keeps_deployments_and_history(first_run):
    with prefect_api() as api:
        before = deployment(api, "daily-sales-etl/daily-sales-etl-dev")
    replaced("retail-etl", "retail-etl/role=server")
    with prefect_api() as api:
        assert deployment(api, "daily-sales-etl/daily-sales-etl-dev") == before
        assert flow_run(api, first_run["run"]["id"])["state"] == "COMPLETED"


def test_a_new_worker_pod_picks_up_runs(landings):
    (worker,) = replaced("retail-etl-dev", "retail-etl/role=worker")
    with prefect_api() as api:
        run = wait_for_run(api, start_run(api, "dev"), timeout=900)
    assert run["state"] == "COMPLETED", run
    assert published_figures(WAREHOUSE) == landings["new"]
    logs = kubectl("-n", "retail-etl-dev", "logs", worker["metadata"]["name"])
    assert run["id"] in logs, logs[-3000:]


def test_a_flow_run_pod_deleted_mid_run_is_rescheduled_and_completes(cluster, landings):
    """A deleted pod gets SIGTERM: the run is rescheduled (backoffLimit 0 makes prefect-kubernetes
    ask for that) and a new Job publishes the day in full."""
    expected = expected_figures(land(cluster["workdir"], seed=31, rows=LARGER))
    with prefect_api() as api:
        run_id = start_run(api, "dev")
        wait_for_run(api, run_id, timeout=600, until=started_tasks)
        kubectl("-n", "retail-etl-dev", "delete", "pod", "-l", f"prefect.io/flow-run-id={run_id}", "--wait=false")
        run = wait_for_run(api, run_id, timeout=900)
    assert run["state"] == "COMPLETED", run
    jobs = kubectl("-n", "retail-etl-dev", "get", "jobs", "-l", f"prefect.io/flow-run-id={run_id}", "-o", "name")
    assert len(jobs.split()) == 2, jobs  # the deleted pod's and the rescheduled one's
    assert published_figures(WAREHOUSE) == expected


def test_a_flow_process_killed_mid_run_leaves_the_day_whole(cluster, landings):
    """The flow's engine process SIGKILLed, as the OOM killer does, gets no chance to stop: the
    run crashes, the day stays entirely the old or the new one, and the next run of the day
    (taking over the dead run's hold on the day) publishes it exactly."""
    before = published_figures(WAREHOUSE)
    expected = expected_figures(land(cluster["workdir"], seed=41, rows=LARGER))
    with prefect_api() as api:
        run_id = start_run(api, "dev")
        wait_for_run(api, run_id, timeout=600, until=started_tasks)
        (pod,) = pods("retail-etl-dev", f"prefect.io/flow-run-id={run_id}")
        kubectl("-n", "retail-etl-dev", "exec", pod["metadata"]["name"], "--", "python", "-c", KILL_ALL_BUT_PID_1)
        killed = wait_for_run(api, run_id, timeout=600)
        assert killed["state"] == "CRASHED", killed
        assert published_figures(WAREHOUSE) in (before, expected)
        rerun = wait_for_run(api, start_run(api, "dev"), timeout=900)
    assert rerun["state"] == "COMPLETED", rerun
    assert published_figures(WAREHOUSE) == expected


def test_a_dask_worker_pod_deleted_mid_run_does_not_lose_the_day(cluster, landings):
    expected = expected_figures(land(cluster["workdir"], seed=43, rows=LARGER))
    with prefect_api() as api:
        run_id = start_run(api, "dev")
        wait_for_run(api, run_id, timeout=600, until=started_tasks)
        kubectl("-n", "retail-etl-dev", "delete", "pod", "-l", "retail-etl/role=dask-worker", "--wait=false")
        run = wait_for_run(api, run_id, timeout=900)
    assert run["state"] == "COMPLETED", run
    assert published_figures(WAREHOUSE) == expected
    assert all(pod["status"]["phase"] == "Running" for pod in pods("retail-etl-dev", "retail-etl/role=dask-worker"))
