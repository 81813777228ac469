"""Flow-run Jobs in several namespaces (worker.jobNamespaces): what each job namespace gets, the
observer's namespaces, the registration's allowed namespaces, and the NetworkPolicies."""

from __future__ import annotations

import json
import os

import pytest
from chartkit import (
    CHART,
    HelmError,
    allowed,
    base_job_template,
    container_env,
    find,
    one,
    render_chart,
    render_example,
    run_helm,
)

NS = "retail-etl-dev"
JOBS = ["team-a", "team-b"]
VALUES = {"worker": {"jobNamespaces": JOBS}}
FLOW_RUN = {"app.kubernetes.io/instance": "retail-etl", "retail-etl/role": "flow-run"}


def in_namespace(objects, kind, namespace):
    return [o for o in objects if o["kind"] == kind and o["metadata"]["namespace"] == namespace]


def registration_args(objects):
    return one(objects, "Job", "retail-etl-register")["spec"]["template"]["spec"]["containers"][0]["command"]


def option(args, name):
    return args[args.index(name) + 1]


def test_each_job_namespace_gets_role_binding_service_account_and_secret():
    objects = render_chart(VALUES)
    for namespace in JOBS:
        role = one(in_namespace(objects, "Role", namespace), "Role", "retail-etl-worker")
        assert role["rules"] == one(in_namespace(objects, "Role", NS), "Role", "retail-etl-worker")["rules"]
        binding = one(in_namespace(objects, "RoleBinding", namespace), "RoleBinding", "retail-etl-worker")
        assert binding["roleRef"]["name"] == "retail-etl-worker"
        # The worker's service account lives in the release namespace.
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "retail-etl-worker", "namespace": NS}]
        account = one(in_namespace(objects, "ServiceAccount", namespace), "ServiceAccount", "retail-etl-flow-run")
        assert account["automountServiceAccountToken"] is False
        # The chart-generated MinIO credentials, with the very value of the release namespace's Secret.
        copy = one(in_namespace(objects, "Secret", namespace), "Secret", "retail-etl-minio")
        original = one(in_namespace(objects, "Secret", NS), "Secret", "retail-etl-minio")
        assert copy["data"] == original["data"]
    # Nothing else of the worker lands in the job namespaces.
    assert {(o["kind"], o["metadata"]["namespace"]) for o in objects if o["metadata"]["namespace"] != NS} == {
        (kind, ns) for ns in JOBS for kind in ("Role", "RoleBinding", "ServiceAccount", "Secret", "NetworkPolicy")
    }


def test_the_release_namespace_is_not_duplicated():
    objects = render_chart({"worker": {"jobNamespaces": [NS, "team-a"]}})
    assert sorted(r["metadata"]["namespace"] for r in find(objects, "Role")) == ["retail-etl-dev", "team-a"]


def test_observer_watches_every_job_namespace():
    """prefect-kubernetes reads a comma-separated list (validate_set_T_from_delim_string)."""
    from prefect_kubernetes.settings import KubernetesObserverSettings

    worker = one(render_chart(VALUES), "Deployment", "retail-etl-worker")["spec"]["template"]["spec"]["containers"][0]
    value = container_env(worker)["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["value"]
    assert value == "retail-etl-dev,team-a,team-b"
    saved = os.environ.get("PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES")
    os.environ["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] = value
    try:
        assert KubernetesObserverSettings().namespaces == {NS, *JOBS}
    finally:
        if saved is None:
            os.environ.pop("PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES")
        else:
            os.environ["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] = saved


def test_registration_allows_exactly_the_job_namespaces():
    objects = render_chart(VALUES)
    args = registration_args(objects)
    assert option(args, "--allowed-namespaces") == "retail-etl-dev,team-a,team-b"
    # Default: this release's deployments still run in the release namespace.
    assert json.loads(option(args, "--job-variables"))["namespace"] == NS
    assert base_job_template(objects)["variables"]["properties"]["namespace"]["default"] == NS


def test_flow_run_namespace_moves_the_deployments():
    objects = render_chart({**VALUES, "flowRun": {"namespace": "team-b"}})
    assert json.loads(option(registration_args(objects), "--job-variables"))["namespace"] == "team-b"
    assert base_job_template(objects)["variables"]["properties"]["namespace"]["default"] == "team-b"


def test_flow_run_namespace_must_be_allowed():
    with pytest.raises(HelmError) as failure:
        render_chart({**VALUES, "flowRun": {"namespace": "elsewhere"}})
    message = failure.value.stderr
    assert "flowRun.namespace=elsewhere" in message and "worker.jobNamespaces" in message


def test_generated_auth_and_s3_secrets_are_copied():
    objects = render_chart(
        {
            **VALUES,
            "basicAuth": {"enabled": True},
            "minio": {"enabled": False},
            "s3": {"accessKeyId": "AKID", "secretAccessKey": "sk"},
        }
    )
    for name in ("retail-etl-auth", "retail-etl-s3"):
        original = one(in_namespace(objects, "Secret", NS), "Secret", name)
        for namespace in JOBS:
            assert one(in_namespace(objects, "Secret", namespace), "Secret", name)["data"] == original["data"]


def test_existing_secrets_are_not_copied():
    """The chart cannot copy a Secret it does not own: NOTES says to create it in each namespace."""
    values = {**VALUES, "basicAuth": {"enabled": True, "existingSecret": "my-auth"}, "s3": {"existingSecret": "my-s3"}}
    objects = render_chart(values)
    assert not [o for o in find(objects, "Secret") if o["metadata"]["namespace"] in JOBS]
    notes = run_helm(
        "install",
        "retail-etl",
        str(CHART),
        "-n",
        NS,
        "--dry-run=client",
        "--set",
        "worker.jobNamespaces={team-a,team-b}",
        "--set",
        "s3.existingSecret=my-s3",
        "--set",
        "basicAuth.enabled=true",
        "--set",
        "basicAuth.existingSecret=my-auth",
    ).stdout.split("NOTES:", 1)[1]
    assert "my-s3 (s3.existingSecret), my-auth (basicAuth.existingSecret)" in notes
    assert "team-a, team-b" in notes


@pytest.mark.parametrize(
    "port, policy",
    [
        (4200, "retail-etl-server"),
        (9000, "retail-etl-minio"),
        (8786, "retail-etl-dask-scheduler"),
        (8790, "retail-etl-dask-worker"),
    ],
)
def test_release_policies_admit_flow_runs_of_job_namespaces(port, policy):
    objects = render_chart(VALUES)
    rule = one(objects, "NetworkPolicy", policy)
    assert allowed(rule, FLOW_RUN, "team-a", port)
    # ... but not other pods there, nor flow runs of namespaces not listed.
    assert not allowed(rule, {**FLOW_RUN, "retail-etl/role": "worker"}, "team-a", port)
    assert not allowed(rule, FLOW_RUN, "team-c", port)
    assert not allowed(one(render_chart(), "NetworkPolicy", policy), FLOW_RUN, "team-a", port)


def test_flow_run_pods_in_job_namespaces_get_a_deny_all():
    objects = render_chart(VALUES)
    for namespace in JOBS:
        policy = one(in_namespace(objects, "NetworkPolicy", namespace), "NetworkPolicy", "retail-etl-flow-run-deny")
        assert policy["spec"]["podSelector"] == {"matchLabels": FLOW_RUN}
        assert policy["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in policy["spec"]
    assert not find(render_chart({**VALUES, "networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_multi_namespace_example():
    objects = render_example("multi-namespace")
    assert sorted(r["metadata"]["namespace"] for r in find(objects, "Role")) == ["retail-etl-dev", "team-a", "team-b"]
    args = registration_args(objects)
    assert json.loads(option(args, "--job-variables"))["namespace"] == "team-a"
    assert option(args, "--allowed-namespaces") == "retail-etl-dev,team-a,team-b"
    for namespace in ("team-a", "team-b"):
        assert one(in_namespace(objects, "Secret", namespace), "Secret", "retail-etl-auth")
