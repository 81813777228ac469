"""A run of the daily deployment triggered through the Prefect API: the worker creates a Job in
the environment's namespace, its pod runs the flow, the tasks run on the Dask worker pods, and
the day lands in the cluster's S3 store with the figures of the generated landing."""

from __future__ import annotations

from clusterkit import kubectl, pods, port_forward, wait_until
from distributed import Client
from nights import artifact_keys, prefect_api, published_figures


def dask_transitions(namespace: str) -> int:
    """How many task transitions the environment's Dask scheduler has made since it started."""
    with port_forward(namespace, "svc/retail-etl-dask-scheduler", 8786) as port:
        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def test_the_run_completes_as_a_job_in_the_environments_namespace(first_run):
    run = first_run["run"]
    assert run["state"] == "COMPLETED", run
    selector = f"prefect.io/flow-run-id={run['id']},retail-etl/role=flow-run"
    flow_pods = pods("retail-etl-dev", selector)
    assert flow_pods, kubectl("-n", "retail-etl-dev", "get", "jobs,pods", "--show-labels")
    assert flow_pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    # the pod exits once the run has reported its final state
    wait_until("the flow-run pod succeeded", lambda: pods("retail-etl-dev", selector)[0]["status"]["phase"] == "Succeeded",
               timeout=120)  # fmt: skip


def test_the_tasks_ran_on_the_dask_worker_pods(first_run):
    assert first_run["run"]["tasks"], "the run recorded no task runs"
    assert dask_transitions("retail-etl-dev") > 0


def test_the_published_day_has_the_landings_figures(first_run):
    assert published_figures("s3://warehouse-dev") == first_run["expected"]


def test_the_first_run_housekept_the_warehouse_and_said_so(first_run):
    with prefect_api() as api:
        keys = artifact_keys(api, first_run["run"]["id"])
    assert {"retail-etl-region-figures-dev", "retail-etl-quarantine-dev", "retail-etl-housekeeping-dev"} <= keys
