"""Per-component pod settings: service accounts, pod labels and annotations, scheduling, extra env
and volumes, PodDisruptionBudgets. Each component's settings must reach its own pods and no other
pod; the flow-run pod is checked as prefect-kubernetes builds it from the base job template."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from chartkit import (
    ENVIRONMENTS,
    KITCHEN_SINK,
    KUBERNETES_VERSIONS,
    HelmError,
    base_job_template,
    container_env,
    example_modes,
    find,
    one,
    render_chart,
    render_chart_text,
    render_environment,
    render_example,
    selector_matches,
)
from flowrun import flow_run_jobs, job_container, registration_arguments

POSTGRESQL = {"postgresql": {"enabled": True}, "prefectServer": {"database": {"type": "postgresql"}}}

# values path -> (role and ServiceAccount suffix, workloads running with its settings, values the component needs)
COMPONENTS = {
    "prefectServer": ("server", [("Deployment", "retail-etl-server")], {}),
    "worker": ("worker", [("Deployment", "retail-etl-worker")], {}),
    "dask.scheduler": ("dask-scheduler", [("Deployment", "retail-etl-dask-scheduler")], {}),
    "dask.worker": ("dask-worker", [("Deployment", "retail-etl-dask-worker")], {}),
    "minio": ("minio", [("StatefulSet", "retail-etl-minio")], {}),
    "postgresql": ("postgresql", [("StatefulSet", "retail-etl-postgresql")], POSTGRESQL),
    "registration": ("registration", [("Job", "retail-etl-register"), ("Job", "retail-etl-make-buckets")], {}),
}

GLOBAL = {
    "nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
}
AFFINITY = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"team": "retail"}},
                },
            }
        ]
    }
}
EXTRA_ENV = [
    {"name": "EXTRA_PLAIN", "value": "1"},
    {"name": "EXTRA_SECRET", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "token"}}},
]


def settings(path: str) -> dict:
    return {
        "serviceAccount": {"annotations": {"example.com/owner": path}},
        "podAnnotations": {"example.com/scrape": "true"},
        "podLabels": {"team": "retail"},
        "nodeSelector": {"disk": "nvme", "pool": "etl"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": AFFINITY,
        "priorityClassName": "etl-high",
        "extraEnvVars": EXTRA_ENV,
        "extraVolumes": [{"name": "extra", "configMap": {"name": "extra-config"}}],
        "extraVolumeMounts": [{"name": "extra", "mountPath": "/etc/extra", "readOnly": True}],
    }


def with_path(path: str, block: dict, base: dict | None = None) -> dict:
    values = copy.deepcopy(base or {})
    target = values
    *parents, last = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = {**target.get(last, {}), **block}
    return values


def check_pod(metadata: dict, spec: dict, container: dict, owner: str) -> None:
    assert metadata["labels"]["team"] == "retail", owner
    assert metadata["annotations"]["example.com/scrape"] == "true", owner
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "disk": "nvme", "pool": "etl"}, owner
    assert spec["tolerations"] == [*GLOBAL["tolerations"], settings("")["tolerations"][0]], owner
    assert spec["affinity"] == AFFINITY, owner
    assert spec["priorityClassName"] == "etl-high", owner
    env = container_env(container)
    assert env["EXTRA_PLAIN"] == EXTRA_ENV[0] and env["EXTRA_SECRET"] == EXTRA_ENV[1], owner
    assert {"name": "extra", "configMap": {"name": "extra-config"}} in spec["volumes"], owner
    assert {"name": "extra", "mountPath": "/etc/extra", "readOnly": True} in container["volumeMounts"], owner


@pytest.mark.parametrize("path", list(COMPONENTS))
def test_component_settings_reach_its_pods_and_no_other(path):
    role, workloads, needs = COMPONENTS[path]
    objects = render_chart(with_path(path, settings(path), {**GLOBAL, **needs}))
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)

    account = one(objects, "ServiceAccount", f"retail-etl-{role}")
    assert account["metadata"]["annotations"] == {"example.com/owner": path}
    assert account["automountServiceAccountToken"] is False
    for kind, name in workloads:
        template = one(objects, kind, name)["spec"]["template"]
        assert template["spec"]["serviceAccountName"] == f"retail-etl-{role}"
        check_pod(template["metadata"], template["spec"], template["spec"]["containers"][0], name)
        # The chart's own labels stay (selectors, NetworkPolicies).
        assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "retail-etl"

    mine = {name for _, name in workloads}
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job") and obj["metadata"]["name"] not in mine:
            template = obj["spec"]["template"]
            assert "team" not in template["metadata"]["labels"], obj["metadata"]["name"]
            assert template["spec"].get("nodeSelector") == GLOBAL["nodeSelector"], obj["metadata"]["name"]
            assert "EXTRA_PLAIN" not in container_env(template["spec"]["containers"][0])
    for account in find(objects, "ServiceAccount"):
        if account["metadata"]["name"] != f"retail-etl-{role}":
            assert not account["metadata"].get("annotations"), account["metadata"]["name"]


def test_flow_run_settings_reach_the_job_prefect_builds():
    objects = render_chart(with_path("flowRun", settings("flowRun"), GLOBAL))
    account = one(objects, "ServiceAccount", "retail-etl-flow-run")
    assert account["metadata"]["annotations"] == {"example.com/owner": "flowRun"}
    for job in flow_run_jobs(objects, "dev"):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(job, version, strict=True)
        template = job["spec"]["template"]
        container = job_container(job)
        check_pod(template["metadata"], template["spec"], container, "flow-run Job")
        assert template["spec"]["serviceAccountName"] == "retail-etl-flow-run"
        # Prefect's labels are added, the chart's role label (NetworkPolicies) survives.
        assert template["metadata"]["labels"]["retail-etl/role"] == "flow-run"
        assert "prefect.io/flow-run-id" in template["metadata"]["labels"]
        # The job variables' env comes first and is complete; the extra variables follow.
        env = container_env(container)
        assert env["RETAIL_ETL_WAREHOUSE"]["value"] == "s3://warehouse-dev"
        assert env["PREFECT__FLOW_RUN_ID"]["value"]
        assert container["envFrom"] == [{"secretRef": {"name": "retail-etl-minio"}}]
    # The Dask workers, which run the flow's tasks, do not get flowRun's settings.
    dask = one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]
    assert "team" not in dask["metadata"]["labels"]


def test_flow_run_job_annotations_variable_still_reaches_the_pod():
    """A deployment's `annotations` job variable is Prefect's own: on the Job and copied to the pod,
    over flowRun.podAnnotations."""
    objects = render_chart({"flowRun": {"podAnnotations": {"a": "chart", "b": "chart"}}})
    _, overrides = registration_arguments(objects)
    (job, *_) = flow_run_jobs(objects, "dev", overrides={**overrides, "annotations": {"b": "deployment"}})
    assert job["metadata"]["annotations"] == {"b": "deployment"}
    assert job["spec"]["template"]["metadata"]["annotations"] == {"a": "chart", "b": "deployment"}


EXISTING_ACCOUNTS = {
    "prefectServer": "platform-server",
    "worker": "platform-worker",
    "flowRun": "etl-runs",
    "dask.scheduler": "dask-sched",
    "dask.worker": "dask-work",
    "minio": "object-store",
    "registration": "etl-register",
}


def test_existing_service_accounts_are_used_and_not_created():
    values: dict = {}
    for path, name in EXISTING_ACCOUNTS.items():
        values = with_path(path, {"serviceAccount": {"create": False, "name": name}}, values)
    objects = render_chart(values)
    assert not find(objects, "ServiceAccount")
    workloads = {
        "prefectServer": ("Deployment", "retail-etl-server"),
        "worker": ("Deployment", "retail-etl-worker"),
        "dask.scheduler": ("Deployment", "retail-etl-dask-scheduler"),
        "dask.worker": ("Deployment", "retail-etl-dask-worker"),
        "minio": ("StatefulSet", "retail-etl-minio"),
        "registration": ("Job", "retail-etl-register"),
    }
    for path, (kind, name) in workloads.items():
        assert one(objects, kind, name)["spec"]["template"]["spec"]["serviceAccountName"] == EXISTING_ACCOUNTS[path]
    assert one(objects, "Job", "retail-etl-make-buckets")["spec"]["template"]["spec"]["serviceAccountName"] == (
        "etl-register"
    )
    binding = one(objects, "RoleBinding", "retail-etl-worker")
    assert binding["subjects"][0]["name"] == "platform-worker"
    assert base_job_template(objects)["variables"]["properties"]["service_account_name"]["default"] == "etl-runs"
    _, job_variables = registration_arguments(objects)
    assert job_variables["service_account_name"] == "etl-runs"
    for job in flow_run_jobs(objects, "dev"):
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "etl-runs"


def test_service_account_name_overrides_the_default_name():
    objects = render_chart({"dask": {"worker": {"serviceAccount": {"name": "dask-runner"}}}})
    one(objects, "ServiceAccount", "dask-runner")
    assert not find(objects, "ServiceAccount", "retail-etl-dask-worker")
    pod = one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dask-runner"


def _every_render() -> dict[str, list[dict]]:
    renders = {name: render_environment(name) for name in ENVIRONMENTS}
    renders["kitchen-sink"] = render_chart(KITCHEN_SINK)
    renders.update({f"example:{mode}": render_example(mode) for mode in example_modes()})
    return renders


def test_every_pod_runs_as_a_service_account_of_its_release():
    """No pod names a ServiceAccount that the release does not create (a missing one stops the
    pods from being created at all)."""
    for render, objects in _every_render().items():
        accounts = {a["metadata"]["name"] for a in find(objects, "ServiceAccount")}
        for obj in objects:
            if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
                name = obj["spec"]["template"]["spec"].get("serviceAccountName")
                assert name in accounts, f"{render}: {obj['kind']}/{obj['metadata']['name']} runs as {name!r}"
        if find(objects, "ConfigMap", "retail-etl-base-job-template"):
            default = base_job_template(objects)["variables"]["properties"]["service_account_name"]["default"]
            assert default in accounts, render


@pytest.mark.parametrize("path", ["worker", "flowRun", "dask.worker", "registration", "postgresql"])
def test_existing_service_account_needs_a_name(path):
    values = with_path(path, {"serviceAccount": {"create": False}}, POSTGRESQL if path == "postgresql" else {})
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    assert (
        f"{path}.serviceAccount.name is required when {path}.serviceAccount.create=false: "
        f"name an existing ServiceAccount, or set {path}.serviceAccount.create=true"
    ) in failure.value.stderr


def test_pod_labels_cannot_replace_the_charts_labels():
    with pytest.raises(HelmError) as failure:
        render_chart({"dask": {"worker": {"podLabels": {"retail-etl/role": "flow-run"}}}})
    assert (
        "dask.worker.podLabels.retail-etl/role is a label the chart sets (selectors and NetworkPolicies rely on it)"
        in failure.value.stderr
    )


# -- PodDisruptionBudgets -----------------------------------------------------------------------

PDB_COMPONENTS = {
    "prefectServer": (
        "server",
        {
            "prefectServer": {"replicas": 2, "database": {"type": "postgresql"}},
            "postgresql": {"enabled": True},
            "redis": {"enabled": True},
        },
    ),
    "worker": ("worker", {"worker": {"replicas": 2}}),
    "dask.worker": ("dask-worker", {"dask": {"worker": {"replicas": 3}}}),
}


@pytest.mark.parametrize("path", list(PDB_COMPONENTS))
def test_pod_disruption_budget_when_more_than_one_replica(path):
    role, values = PDB_COMPONENTS[path]
    objects = render_chart(values)
    budget = one(objects, "PodDisruptionBudget", f"retail-etl-{role}")
    assert budget["spec"]["maxUnavailable"] == 1
    workload = find(objects, "Deployment", f"retail-etl-{role}")[0]
    assert selector_matches(budget["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
    # Only this component's pods are selected.
    for other in find(objects, "Deployment"):
        if other is not workload:
            assert not selector_matches(budget["spec"]["selector"], other["spec"]["template"]["metadata"]["labels"])

    custom = render_chart(with_path(path, {"podDisruptionBudget": {"minAvailable": "50%"}}, values))
    assert one(custom, "PodDisruptionBudget", f"retail-etl-{role}")["spec"] == {
        "minAvailable": "50%",
        "selector": budget["spec"]["selector"],
    }

    single = with_path(path, {"replicas": 1}, values)
    assert not find(render_chart(single), "PodDisruptionBudget", f"retail-etl-{role}")


def test_pod_disruption_budget_takes_one_of_min_and_max():
    both = {"worker": {"replicas": 2, "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}}
    with pytest.raises(HelmError) as failure:
        render_chart(both)
    assert "/worker/podDisruptionBudget" in failure.value.stderr
    # The template refuses it too, should the schema be skipped.
    with pytest.raises(HelmError) as failure:
        render_chart_text(
            extra_args=(
                "--skip-schema-validation",
                "--set",
                "worker.replicas=2,worker.podDisruptionBudget.minAvailable=1,worker.podDisruptionBudget.maxUnavailable=1",
            )
        )
    assert "worker.podDisruptionBudget: set minAvailable or maxUnavailable, not both" in failure.value.stderr
