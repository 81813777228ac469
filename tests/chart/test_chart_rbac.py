"""The worker's Role grants exactly the Kubernetes API calls prefect-kubernetes makes, in every
namespace its flow-run Jobs may run in; the hook Jobs are deleted on success only."""

from __future__ import annotations

import re
from pathlib import Path

import prefect_kubernetes
import pytest
from chartkit import CHART, container_env, find, one, render_chart

PACKAGE = Path(prefect_kubernetes.__file__).parent
SOURCES = [PACKAGE / "worker.py", PACKAGE / "observer.py"]
CALL = re.compile(r"\.(list|read|create|delete|patch|replace)_(namespaced_)?(\w+?)(_for_all_namespaces)?\(")
VERBS = {"read": "get", "list": "list", "create": "create", "delete": "delete", "patch": "patch", "replace": "update"}
RESOURCES = {"job": ("batch", "jobs"), "pod": ("", "pods"), "pod_log": ("", "pods/log"), "secret": ("", "secrets")}
# Calls the chart's settings never reach, with the setting that would.
UNREACHED = {
    # Secrets: only with PREFECT_INTEGRATIONS_KUBERNETES_WORKER_CREATE_SECRET_FOR_API_KEY /
    # _API_KEY_SECRET_NAME (Prefect Cloud API keys) or _STORE_ENV_AS_SECRET, none of which the chart sets.
    ("", "secrets"),
}


def calls_in_source() -> tuple[set[tuple[str, str, str]], bool]:
    """(group, resource, verb) of every Kubernetes API call in the worker and observer, and whether
    a cluster-wide list exists (used only when no observer namespace is set)."""
    calls, clusterwide = set(), False
    for path in SOURCES:
        text = path.read_text()
        for verb, _, kind, all_namespaces in CALL.findall(text):
            if kind not in RESOURCES:
                continue  # not a Kubernetes call (e.g. Prefect's client read_flow_run)
            group, resource = RESOURCES[kind]
            calls.add((group, resource, VERBS[verb]))
            clusterwide |= bool(all_namespaces)
        # kopf watches: a LIST, then a WATCH, of each resource an on.event handler names.
        if re.search(r'kopf\.on\.event\(\s*"pods"', text):
            calls |= {("", "pods", "list"), ("", "pods", "watch")}
        if re.search(r'kopf\.on\.event\(\s*"batch",\s*"v1",\s*"jobs"', text):
            calls |= {("batch", "jobs", "list"), ("batch", "jobs", "watch")}
    return calls, clusterwide


def role_grants(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def commented_calls() -> set[tuple[str, str, str]]:
    """The list in worker-rbac.yaml's comment: `<who> <call> <resource> <verbs> (why)`."""
    text = (CHART / "templates" / "worker-rbac.yaml").read_text()
    rows = [
        re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if re.match(r"\s+(worker|observer)\s", line)
    ]
    assert len(rows) >= 8, rows
    grants = set()
    for _, _, resource, verbs, *_ in rows:
        group = "batch" if resource.startswith("batch/") else ""
        for verb in verbs.split(","):
            grants.add((group, resource.removeprefix("batch/"), verb.strip()))
    return grants


def test_role_is_exactly_what_prefect_kubernetes_calls():
    calls, clusterwide = calls_in_source()
    assert ("batch", "jobs", "create") in calls and ("", "pods/log", "get") in calls  # the scan finds calls
    needed = {call for call in calls if call[:2] not in UNREACHED}
    role = one(render_chart(), "Role", "retail-etl-worker")
    assert role_grants(role) == needed
    assert commented_calls() == needed
    # The cluster-wide pod list is used only without observer namespaces; the chart always sets them.
    assert clusterwide
    worker = one(render_chart(), "Deployment", "retail-etl-worker")["spec"]["template"]["spec"]["containers"][0]
    assert container_env(worker)["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["value"]
    secret_settings = [name for name in container_env(worker) if "SECRET" in name and "AUTH_STRING" not in name]
    assert not secret_settings


def test_no_cluster_wide_rbac_with_job_namespaces():
    objects = render_chart({"worker": {"jobNamespaces": ["team-a", "team-b"]}})
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["retail-etl-dev", "team-a", "team-b"]
    assert len({str(r["rules"]) for r in roles}) == 1


@pytest.mark.parametrize("job", ["retail-etl-register", "retail-etl-make-buckets"])
def test_hook_jobs_are_deleted_on_success_and_kept_on_failure(job):
    annotations = one(render_chart(), "Job", job)["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    policies = annotations["helm.sh/hook-delete-policy"].split(",")
    assert sorted(policies) == ["before-hook-creation", "hook-succeeded"]
    assert "hook-failed" not in policies
