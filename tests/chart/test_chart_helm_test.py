"""The `helm test` pods: hooks, commands and which pods each mode gets; they run like the
registration Job (service account, image, security context, resources)."""

from __future__ import annotations

import pytest
from chartkit import find, one, render_chart, render_environment

HOOK = {"helm.sh/hook": "test", "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded"}


def helm_test_pods(objects):
    return {p["metadata"]["name"]: p for p in find(objects, "Pod")}


def command(pod):
    return pod["spec"]["containers"][0]["command"]


def test_default_release_checks_server_pool_buckets_and_dask():
    objects = render_chart()
    pods = helm_test_pods(objects)
    assert set(pods) == {"retail-etl-test-server", "retail-etl-test-buckets", "retail-etl-test-dask"}
    for pod in pods.values():
        assert {k: pod["metadata"]["annotations"][k] for k in HOOK} == HOOK
        assert pod["metadata"]["labels"]["retail-etl/role"] == "helm-test"
        assert command(pod)[:2] == ["retail-etl", "check-install"]
    api = "http://retail-etl-server.retail-etl-dev.svc.cluster.local:4200/api"
    assert command(pods["retail-etl-test-server"])[2:] == [
        "--api", api, "--work-pool", "retail-etl-dev",
        "--base-job-template", "/etc/retail-etl/base-job-template.json", "--timeout", "60",
    ]  # fmt: skip
    volumes = pods["retail-etl-test-server"]["spec"]["volumes"]
    assert {"name": "base-job-template", "configMap": {"name": "retail-etl-base-job-template"}} in volumes
    assert command(pods["retail-etl-test-buckets"])[2:] == [
        "--bucket", "landing", "--bucket", "warehouse-dev", "--timeout", "60",
    ]  # fmt: skip
    assert pods["retail-etl-test-buckets"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "retail-etl-minio"}}
    ]
    assert command(pods["retail-etl-test-dask"])[2:] == [
        "--dask-address", "tcp://retail-etl-dask-scheduler.retail-etl-dev.svc.cluster.local:8786", "--timeout", "60",
    ]  # fmt: skip


def test_pods_run_like_the_registration_job():
    objects = render_chart()
    registration = one(objects, "Job", "retail-etl-register")["spec"]["template"]["spec"]
    for pod in helm_test_pods(objects).values():
        spec, container = pod["spec"], pod["spec"]["containers"][0]
        assert spec["serviceAccountName"] == registration["serviceAccountName"]
        assert spec["securityContext"] == registration["securityContext"]
        assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
        reg = registration["containers"][0]
        for key in ("image", "imagePullPolicy", "securityContext", "resources"):
            assert container[key] == reg[key], key


def test_environment_release_checks_its_own_buckets():
    """Without MinIO: the buckets of etl.landing and the warehouse."""
    pods = helm_test_pods(render_environment("dev"))
    assert command(pods["retail-etl-test-buckets"])[2:6] == ["--bucket", "landing", "--bucket", "warehouse-dev"]
    assert "--work-pool" in command(pods["retail-etl-test-server"])


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"dask": {"enabled": False}}, {"retail-etl-test-server", "retail-etl-test-buckets"}),
        ({"helmTests": {"enabled": False}}, set()),
    ],
)
def test_pods_follow_the_components(values, expected):
    assert set(helm_test_pods(render_chart(values))) == expected


def test_platform_release_checks_health_without_a_pool():
    pods = helm_test_pods(render_environment("platform"))
    assert "--work-pool" not in command(pods["retail-etl-test-server"])
    assert "retail-etl-test-dask" not in pods


def test_basic_auth_reaches_the_server_check():
    pod = helm_test_pods(render_chart({"basicAuth": {"enabled": True}}))["retail-etl-test-server"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]["name"] == "retail-etl-auth"


def test_network_policies_admit_the_helm_test_pods():
    from chartkit import allowed

    objects = render_chart()
    labels = {"app.kubernetes.io/instance": "retail-etl", "retail-etl/role": "helm-test"}
    for policy, port in (("retail-etl-server", 4200), ("retail-etl-minio", 9000), ("retail-etl-dask-scheduler", 8786)):
        assert allowed(one(objects, "NetworkPolicy", policy), labels, "retail-etl-dev", port), policy


def test_pods_carry_the_registration_pod_settings():
    """A test pod needs what the registration Job needs to reach its targets: Istio's
    sidecar.istio.io/inject: "false" (else the pod never completes), a proxy or CA bundle through
    extraEnvVars and extraVolumes. The hook annotations and the chart's role label stay."""
    values = {
        "registration": {
            "podAnnotations": {"sidecar.istio.io/inject": "false", "helm.sh/hook": "pre-install"},
            "podLabels": {"team": "data"},
            "extraEnvVars": [{"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/corp/ca.pem"}],
            "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
            "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
        }
    }
    pods = helm_test_pods(render_chart(values))
    assert set(pods) == {"retail-etl-test-server", "retail-etl-test-buckets", "retail-etl-test-dask"}
    for pod in pods.values():
        metadata, spec = pod["metadata"], pod["spec"]
        assert {k: metadata["annotations"][k] for k in HOOK} == HOOK
        assert metadata["annotations"]["sidecar.istio.io/inject"] == "false"
        assert metadata["labels"]["team"] == "data" and metadata["labels"]["retail-etl/role"] == "helm-test"
        container = spec["containers"][0]
        assert {"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/corp/ca.pem"} in container["env"]
        assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in spec["volumes"]
        assert {"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in container["volumeMounts"]
