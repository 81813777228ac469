"""Dask: at least one worker whenever Dask is on (schema and guard), and the optional HPA."""

from __future__ import annotations

import pytest
from chartkit import HelmError, find, one, render_chart, render_chart_text, render_example

HPA = {"dask": {"worker": {"autoscaling": {"enabled": True}}}}


def test_zero_workers_is_refused_by_the_schema():
    with pytest.raises(HelmError) as failure:
        render_chart({"dask": {"worker": {"replicas": 0}}})
    assert "/dask/worker/replicas" in failure.value.stderr and "minimum" in failure.value.stderr


def test_zero_workers_is_refused_by_the_guard_too():
    """Without schema validation (Argo CD and some tools skip it) the template guard still refuses,
    naming the value and the alternative."""
    with pytest.raises(HelmError) as failure:
        render_chart_text({"dask": {"worker": {"replicas": 0}}}, extra_args=["--skip-schema-validation"])
    assert "dask.worker.replicas=0" in failure.value.stderr
    assert "dask.enabled=false" in failure.value.stderr


def test_zero_workers_is_fine_without_dask():
    objects = render_chart({"dask": {"enabled": False, "worker": {"replicas": 0}}})
    assert not find(objects, "Deployment", "retail-etl-dask-worker")


def test_replicas_without_autoscaling():
    objects = render_chart({"dask": {"worker": {"replicas": 3}}})
    assert one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["replicas"] == 3
    assert not find(objects, "HorizontalPodAutoscaler")


def test_autoscaling_renders_an_hpa_and_drops_replicas():
    objects = render_chart(HPA)
    deployment = one(objects, "Deployment", "retail-etl-dask-worker")
    assert "replicas" not in deployment["spec"]  # an upgrade must not reset what the HPA chose
    hpa = one(objects, "HorizontalPodAutoscaler", "retail-etl-dask-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "retail-etl-dask-worker",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    # Gentle scale-down: each removed worker's tasks are rerun elsewhere.
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_autoscaling_example():
    objects = render_example("dask-autoscaling")
    hpa = one(objects, "HorizontalPodAutoscaler", "retail-etl-dask-worker")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 8)
    assert hpa["metadata"]["namespace"] == "retail-etl-dev"
    assert "replicas" not in one(objects, "Deployment", "retail-etl-dask-worker")["spec"]


@pytest.mark.parametrize(
    "autoscaling, extra, message",
    [
        ({"minReplicas": 0}, [], "/dask/worker/autoscaling/minReplicas"),
        ({"minReplicas": 0}, ["--skip-schema-validation"], "dask.worker.autoscaling.minReplicas=0"),
        ({"minReplicas": 3, "maxReplicas": 2}, [], "dask.worker.autoscaling.maxReplicas=2 is below"),
    ],
)
def test_autoscaling_guards(autoscaling, extra, message):
    values = {"dask": {"worker": {"autoscaling": {"enabled": True, **autoscaling}}}}
    with pytest.raises(HelmError) as failure:
        render_chart_text(values, extra_args=extra)
    assert message in failure.value.stderr


def test_autoscaling_needs_a_cpu_request():
    """The schema requires requests.cpu; the guard explains why when the schema is skipped."""
    values = {"dask": {"worker": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": None}}}}}
    with pytest.raises(HelmError) as failure:
        render_chart_text(values)
    assert "missing property 'cpu'" in failure.value.stderr
    with pytest.raises(HelmError) as failure:
        render_chart_text(values, extra_args=["--skip-schema-validation"])
    assert "dask.worker.resources.requests.cpu" in failure.value.stderr


def test_no_hpa_without_dask():
    objects = render_chart({"dask": {"enabled": False, "worker": {"autoscaling": {"enabled": True}}}})
    assert not find(objects, "HorizontalPodAutoscaler")


def test_notes_give_the_autoscaling_range():
    """NOTES named dask.worker.replicas (ignored under autoscaling) as the worker count."""
    from chartkit import CHART, run_helm

    args = ["install", "retail-etl", str(CHART), "--namespace", "retail-etl-dev", "--dry-run=client"]
    scaled = args + ["--set", "dask.worker.autoscaling.enabled=true,dask.worker.autoscaling.maxReplicas=6"]
    assert "dask(2 workers)" in run_helm(*args).stdout
    notes = run_helm(*scaled).stdout.split("NOTES:", 1)[1]
    assert "dask(1-6 workers, autoscaled)" in notes and "dask(2 workers)" not in notes


@pytest.mark.parametrize("threads", [1, 4])
def test_worker_thread_pools_follow_its_threads(threads):
    """Arrow (OMP_NUM_THREADS) and Polars size their pools to the node's cores unless told: each worker
    pod gets its --nthreads, so several workers on a node do not oversubscribe it."""
    objects = render_chart({"dask": {"worker": {"threads": threads}}})
    container = one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["command"][container["command"].index("--nthreads") + 1] == str(threads)
    assert env["OMP_NUM_THREADS"] == env["POLARS_MAX_THREADS"] == str(threads)
