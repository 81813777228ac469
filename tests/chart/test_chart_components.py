"""Per-component assertions on the rendered chart."""

from __future__ import annotations

import base64
import json
import re

import pytest
import yaml
from chartkit import (
    CHART,
    ENVIRONMENTS,
    KITCHEN_SINK,
    HelmError,
    allowed,
    base_job_template,
    container_env,
    find,
    one,
    pod_templates,
    render_chart,
    render_environment,
    run_helm,
    selector_matches,
)

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
ENV_FILES = {name: yaml.safe_load(path.read_text()) for name, (path, _) in ENVIRONMENTS.items() if path}
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
OWN_IMAGE = "retail-etl:0.1.0"

# What prefect-kubernetes 0.8 calls (the list in worker-rbac.yaml; tests/chart/test_chart_rbac.py derives it).
WORKER_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


def kinds_and_names(objects):
    """The release's objects; the `helm test` pods are asserted per mode in test_chart_helm_test.py."""
    return {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") != "test"
    }


def container(objects, kind, name, index=0):
    return one(objects, kind, name)["spec"]["template"]["spec"]["containers"][index]


def command_line(c) -> list[str]:
    return [*c.get("command", []), *c.get("args", [])]


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# -- RBAC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_rbac_is_namespaced_and_minimal(environment):
    objects = render_environment(environment)
    _, namespace = ENVIRONMENTS[environment]
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    roles, bindings = find(objects, "Role"), find(objects, "RoleBinding")
    if not one_or_none(objects, "Deployment", "retail-etl-worker"):
        assert not roles and not bindings
        return
    assert [r["metadata"]["name"] for r in roles] == ["retail-etl-worker"]
    role = roles[0]
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == WORKER_RULES
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "retail-etl-worker"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "retail-etl-worker", "namespace": namespace}]
    worker_pod = one(objects, "Deployment", "retail-etl-worker")["spec"]["template"]["spec"]
    assert worker_pod["serviceAccountName"] == "retail-etl-worker"


def one_or_none(objects, kind, name):
    found = find(objects, kind, name)
    return found[0] if found else None


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_only_the_worker_gets_a_service_account_token(environment):
    objects = render_environment(environment)
    for owner, _, spec in pod_templates(objects):
        expected = owner == "Deployment/retail-etl-worker"
        assert spec.get("automountServiceAccountToken") is expected, owner
    for account in find(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]


def test_flow_run_service_account_has_no_rbac():
    objects = render_chart()
    one(objects, "ServiceAccount", "retail-etl-flow-run")
    subjects = [s["name"] for b in find(objects, "RoleBinding") for s in b["subjects"]]
    assert "retail-etl-flow-run" not in subjects
    variables = base_job_template(objects)["variables"]["properties"]
    assert variables["service_account_name"]["default"] == "retail-etl-flow-run"


# -- Prefect API URL ----------------------------------------------------------------------------


def test_worker_api_url_is_the_server_service_of_the_release():
    objects = render_chart(namespace="etl")
    url = container_env(container(objects, "Deployment", "retail-etl-worker"))["PREFECT_API_URL"]["value"]
    match = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)/api", url)
    assert match, url
    service = one(objects, "Service", match.group(1))
    assert match.group(2) == service["metadata"]["namespace"] == "etl"
    assert int(match.group(3)) in [p["port"] for p in service["spec"]["ports"]]
    server_pod_labels = one(objects, "Deployment", "retail-etl-server")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, server_pod_labels)
    # Every other client of the release uses the same URL.
    assert container_env(container(objects, "Deployment", "retail-etl-dask-worker"))["PREFECT_API_URL"]["value"] == url
    assert container_env(container(objects, "Job", "retail-etl-register"))["PREFECT_API_URL"]["value"] == url
    assert base_job_template(objects)["variables"]["properties"]["env"]["default"]["PREFECT_API_URL"] == url


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_environment_clients_use_the_platform_server(environment):
    objects = render_environment(environment)
    expected = ENV_FILES[environment]["prefectApiUrl"]
    assert expected == "http://retail-etl-server.retail-etl.svc.cluster.local:4200/api"
    assert container_env(container(objects, "Deployment", "retail-etl-worker"))["PREFECT_API_URL"]["value"] == expected
    assert (
        container_env(container(objects, "Deployment", "retail-etl-dask-worker"))["PREFECT_API_URL"]["value"]
        == expected
    )
    assert container_env(container(objects, "Job", "retail-etl-register"))["PREFECT_API_URL"]["value"] == expected
    # ... which is what the platform release renders.
    platform = render_environment("platform")
    one(platform, "Service", "retail-etl-server")
    assert platform_service_url(platform, "retail-etl-server", "http") + "/api" == expected


def platform_service_url(objects, name, port_name):
    service = one(objects, "Service", name)
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
    return f"http://{name}.{service['metadata']['namespace']}.svc.cluster.local:{port}"


@pytest.mark.parametrize("component", ["worker", "dask", "registration"])
def test_api_url_required_without_server(component):
    values = {
        "prefectServer": {"enabled": False},
        "worker": {"enabled": component == "worker"},
        "dask": {"enabled": component == "dask"},
        "registration": {"enabled": component == "registration"},
    }
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    assert (
        f"prefectApiUrl is required when prefectServer.enabled=false and {component}.enabled=true"
        in failure.value.stderr
    )


# -- worker -------------------------------------------------------------------------------------


def test_worker_command_and_settings():
    objects = render_chart({"worker": {"clusterUid": "abc-123"}}, namespace="etl")
    c = container(objects, "Deployment", "retail-etl-worker")
    args = command_line(c)
    assert args[:3] == ["prefect", "worker", "start"]
    assert option(args, "--type") == "kubernetes"
    assert option(args, "--pool") == "retail-etl-dev"
    assert "--with-healthcheck" in args
    assert option(args, "--base-job-template") == "/etc/retail-etl/base-job-template.json"
    env = container_env(c)
    assert env["PREFECT_KUBERNETES_CLUSTER_UID"]["value"] == "abc-123"
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["value"] == "etl"
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    volumes = one(objects, "Deployment", "retail-etl-worker")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "base-job-template", "configMap": {"name": "retail-etl-base-job-template"}} in volumes


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_work_pool_follows_the_environment(environment):
    objects = render_environment(environment)
    assert (
        option(command_line(container(objects, "Deployment", "retail-etl-worker")), "--pool")
        == f"retail-etl-{environment}"
    )
    register = command_line(container(objects, "Job", "retail-etl-register"))
    assert option(register, "--work-pool") == f"retail-etl-{environment}"
    assert option(register, "--environment") == environment


# -- base job template --------------------------------------------------------------------------


def test_base_job_template_has_prefects_shape_and_chart_defaults():
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect_kubernetes.worker import KubernetesWorker

    objects = render_chart(namespace="etl")
    template = base_job_template(objects)
    default = KubernetesWorker.get_default_base_job_template()
    assert set(template) == set(default)
    assert set(default["job_configuration"]) <= set(template["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])
    # The API accepts it as a work pool's template (every placeholder has a variable).
    WorkPoolCreate(name="retail-etl-dev", type="kubernetes", base_job_template=template)

    variables = template["variables"]["properties"]
    assert variables["image"]["default"] == OWN_IMAGE
    assert variables["namespace"]["default"] == "etl"
    assert variables["finished_job_ttl"]["default"] == 3600
    assert variables["image_pull_policy"]["default"] == "IfNotPresent"
    assert variables["backoff_limit"]["default"] == 0
    assert variables["cpu_request"]["default"] == "500m" and variables["memory_limit"]["default"] == "2Gi"
    env = variables["env"]["default"]
    assert env["RETAIL_ETL_WAREHOUSE"] == "s3://warehouse-dev"
    assert env["RETAIL_ETL_LANDING"] == "s3://landing"
    assert env["RETAIL_ETL_S3_ENDPOINT_URL"] == "http://retail-etl-minio.etl.svc.cluster.local:9000"
    assert env["RETAIL_ETL_DASK_ADDRESS"] == "tcp://retail-etl-dask-scheduler.etl.svc.cluster.local:8786"
    assert env["PREFECT_API_URL"] == "http://retail-etl-server.etl.svc.cluster.local:4200/api"

    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "retail-etl-minio"}}]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert template["job_configuration"]["job_manifest"]["spec"]["ttlSecondsAfterFinished"] == "{{ finished_job_ttl }}"


def test_base_job_template_follows_values():
    objects = render_chart(
        {
            "worker": {"finishedJobTtl": 600},
            "dask": {"enabled": False},
            "etl": {"warehouse": "s3://wh", "regions": "north"},
            "flowRun": {"resources": {"limits": {"cpu": "3", "memory": "6Gi"}}},
        }
    )
    variables = base_job_template(objects)["variables"]["properties"]
    assert variables["finished_job_ttl"]["default"] == 600
    assert variables["cpu_limit"]["default"] == "3" and variables["memory_limit"]["default"] == "6Gi"
    env = variables["env"]["default"]
    assert "RETAIL_ETL_DASK_ADDRESS" not in env
    assert env["RETAIL_ETL_WAREHOUSE"] == "s3://wh" and env["RETAIL_ETL_REGIONS"] == "north"


# -- registration ------------------------------------------------------------------------------


def test_registration_job():
    objects = render_chart(namespace="etl")
    job = one(objects, "Job", "retail-etl-register")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    # Deleted when it succeeded, kept for its logs when it failed.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    bucket_job = one(objects, "Job", "retail-etl-make-buckets")
    assert int(bucket_job["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    c = job["spec"]["template"]["spec"]["containers"][0]
    args = command_line(c)
    assert args[:15] == [
        "retail-etl",
        "register",
        "--environment",
        "dev",
        "--work-pool",
        "retail-etl-dev",
        "--pool-type",
        "kubernetes",
        "--base-job-template",
        "/etc/retail-etl/base-job-template.json",
        "--image",
        OWN_IMAGE,
        "--prefect-file",
        "/opt/retail-etl/prefect.yaml",
        "--wait-timeout",
    ]
    assert option(args, "--wait-timeout") == "300"
    job_variables = json.loads(option(args, "--job-variables"))
    assert job_variables["namespace"] == "etl"
    assert option(args, "--allowed-namespaces") == "etl"
    assert job_variables["service_account_name"] == "retail-etl-flow-run"
    assert job_variables["env"]["RETAIL_ETL_WAREHOUSE"] == "s3://warehouse-dev"
    env = container_env(c)
    assert env["RETAIL_ETL_WAREHOUSE"]["value"] == "s3://warehouse-dev"
    assert env["RETAIL_ETL_S3_ENDPOINT_URL"]["value"] == "http://retail-etl-minio.etl.svc.cluster.local:9000"
    assert c["envFrom"] == [{"secretRef": {"name": "retail-etl-minio"}}]
    assert {"name": "base-job-template", "mountPath": "/etc/retail-etl", "readOnly": True} in c["volumeMounts"]
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "base-job-template", "configMap": {"name": "retail-etl-base-job-template"}} in volumes


def test_registration_removes_the_dask_address_when_dask_is_off():
    objects = render_environment("dev", {"dask": {"enabled": False}})
    args = command_line(container(objects, "Job", "retail-etl-register"))
    assert json.loads(option(args, "--job-variables"))["env"]["RETAIL_ETL_DASK_ADDRESS"] is None


# -- images --------------------------------------------------------------------------------------

IMAGE_REF = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9._/-]*(?::[0-9]+)?(?:/[a-z0-9._-]+)*)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def all_images(objects):
    for owner, _, spec in pod_templates(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["image"] != "{{ image }}":
                yield owner, c["image"]
    for cm in find(objects, "ConfigMap", "retail-etl-base-job-template"):
        yield (
            "base job template",
            json.loads(cm["data"]["base-job-template.json"])["variables"]["properties"]["image"]["default"],
        )
    for job in find(objects, "Job", "retail-etl-register"):
        yield "registration --image", option(command_line(job["spec"]["template"]["spec"]["containers"][0]), "--image")


@pytest.mark.parametrize("render", [*ENVIRONMENTS, "kitchen-sink"])
def test_every_image_has_a_pinned_tag(render):
    objects = render_chart(KITCHEN_SINK) if render == "kitchen-sink" else render_environment(render)
    images = list(all_images(objects))
    assert images
    for owner, image in images:
        match = IMAGE_REF.match(image)
        assert match, f"{owner}: {image} has no explicit tag"
        assert match.group("tag") != "latest", f"{owner}: {image}"


def test_image_references():
    objects = render_chart({"postgresql": {"enabled": True}, "prefectServer": {"database": {"type": "postgresql"}}})
    images = dict(all_images(objects))
    assert images["StatefulSet/retail-etl-minio"] == MINIO_IMAGE
    assert images["StatefulSet/retail-etl-postgresql"] == "postgres:16.4-alpine"
    for owner in (
        "Deployment/retail-etl-server",
        "Deployment/retail-etl-worker",
        "Deployment/retail-etl-dask-scheduler",
        "Deployment/retail-etl-dask-worker",
        "Job/retail-etl-register",
        "Job/retail-etl-make-buckets",
        "base job template",
        "registration --image",
    ):
        assert images[owner] == OWN_IMAGE, owner
    digest = "sha256:" + "b" * 64
    objects = render_chart({"image": {"tag": "1.2.3", "digest": digest}})
    assert {image for owner, image in all_images(objects) if "minio" not in owner} == {f"retail-etl:1.2.3@{digest}"}


# -- toggles -------------------------------------------------------------------------------------

SERVER = {
    ("Deployment", "retail-etl-server"),
    ("Service", "retail-etl-server"),
    ("PersistentVolumeClaim", "retail-etl-server-data"),
    ("NetworkPolicy", "retail-etl-server"),
    ("ServiceAccount", "retail-etl-server"),
}
MINIO = {
    ("StatefulSet", "retail-etl-minio"),
    ("Service", "retail-etl-minio"),
    ("Secret", "retail-etl-minio"),
    ("Job", "retail-etl-make-buckets"),
    ("NetworkPolicy", "retail-etl-minio"),
    ("ServiceAccount", "retail-etl-minio"),
    # The bucket Job runs under the registration's ServiceAccount.
    ("ServiceAccount", "retail-etl-registration"),
}
WORKER = {
    ("Deployment", "retail-etl-worker"),
    ("ServiceAccount", "retail-etl-worker"),
    ("Role", "retail-etl-worker"),
    ("RoleBinding", "retail-etl-worker"),
    ("ServiceAccount", "retail-etl-flow-run"),
    ("ConfigMap", "retail-etl-base-job-template"),
}
DASK = {
    ("Deployment", "retail-etl-dask-scheduler"),
    ("Service", "retail-etl-dask-scheduler"),
    ("Deployment", "retail-etl-dask-worker"),
    ("NetworkPolicy", "retail-etl-dask-scheduler"),
    ("NetworkPolicy", "retail-etl-dask-worker"),
    ("ServiceAccount", "retail-etl-dask-scheduler"),
    ("ServiceAccount", "retail-etl-dask-worker"),
    # Two Dask workers by default.
    ("PodDisruptionBudget", "retail-etl-dask-worker"),
}
REGISTRATION = {
    ("Job", "retail-etl-register"),
    ("ConfigMap", "retail-etl-base-job-template"),
    ("ServiceAccount", "retail-etl-flow-run"),
    ("ServiceAccount", "retail-etl-registration"),
}
POSTGRESQL = {
    ("StatefulSet", "retail-etl-postgresql"),
    ("Service", "retail-etl-postgresql"),
    ("Secret", "retail-etl-postgresql"),
    ("NetworkPolicy", "retail-etl-postgresql"),
    ("ServiceAccount", "retail-etl-postgresql"),
}
ALWAYS = {("NetworkPolicy", "retail-etl-default-deny")}
EXTERNAL_S3 = {
    "minio": {"enabled": False},
    "s3": {"endpointUrl": "https://s3.example.com", "existingSecret": "s3-creds"},
}


@pytest.mark.parametrize(
    "values, expected",
    [
        (None, ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION),
        ("platform", ALWAYS | SERVER | MINIO),
        # dev: one Dask worker, so no PodDisruptionBudget; prod: two workers and four Dask workers.
        ("dev", (ALWAYS | WORKER | DASK | REGISTRATION) - {("PodDisruptionBudget", "retail-etl-dask-worker")}),
        ("prod", ALWAYS | WORKER | DASK | REGISTRATION | {("PodDisruptionBudget", "retail-etl-worker")}),
        (EXTERNAL_S3, ALWAYS | SERVER | WORKER | DASK | REGISTRATION),
        ({"dask": {"enabled": False}}, ALWAYS | SERVER | MINIO | WORKER | REGISTRATION),
        ({"worker": {"enabled": False}}, ALWAYS | SERVER | MINIO | DASK | REGISTRATION),
        ({"registration": {"enabled": False}}, ALWAYS | SERVER | MINIO | WORKER | DASK),
        ({"worker": {"enabled": False}, "registration": {"enabled": False}}, ALWAYS | SERVER | MINIO | DASK),
        (
            {"prefectServer": {"database": {"type": "postgresql"}}, "postgresql": {"enabled": True}},
            (ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION | POSTGRESQL)
            - {("PersistentVolumeClaim", "retail-etl-server-data")},
        ),
        (
            {"prefectServer": {"database": {"type": "postgresql", "external": {"existingSecret": "db"}}}},
            (ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION)
            - {("PersistentVolumeClaim", "retail-etl-server-data")},
        ),
        (
            {"prefectServer": {"persistence": {"existingClaim": "mine"}}},
            (ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION)
            - {("PersistentVolumeClaim", "retail-etl-server-data")},
        ),
        (
            {"networkPolicy": {"enabled": False}},
            {o for o in ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION if o[0] != "NetworkPolicy"},
        ),
        (
            {"prefectServer": {"ingress": {"enabled": True}}},
            ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION | {("Ingress", "retail-etl-server")},
        ),
        (
            {"basicAuth": {"enabled": True}},
            ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION | {("Secret", "retail-etl-auth")},
        ),
        (
            {"basicAuth": {"enabled": True, "existingSecret": "auth"}},
            ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION,
        ),
        (
            {"minio": {"enabled": False}, "s3": {"accessKeyId": "AKID", "secretAccessKey": "secret-key"}},
            ALWAYS | SERVER | WORKER | DASK | REGISTRATION | {("Secret", "retail-etl-s3")},
        ),
        (
            {"minio": {"existingSecret": "minio-root"}},
            (ALWAYS | SERVER | MINIO | WORKER | DASK | REGISTRATION) - {("Secret", "retail-etl-minio")},
        ),
    ],
    ids=[
        "defaults",
        "platform",
        "dev",
        "prod",
        "external-s3",
        "no-dask",
        "no-worker",
        "no-registration",
        "server-minio-dask",
        "bundled-postgresql",
        "external-postgresql",
        "existing-claim",
        "no-networkpolicy",
        "ingress",
        "basic-auth",
        "basic-auth-existing",
        "s3-from-values",
        "minio-existing-secret",
    ],
)
def test_toggles_render_exactly_the_expected_objects(values, expected):
    if isinstance(values, str):
        objects = render_environment(values)
    else:
        objects = render_chart(values)
    assert kinds_and_names(objects) == expected


def test_minio_existing_secret_is_used_everywhere():
    objects = render_chart({"minio": {"existingSecret": "minio-root"}})
    assert not find(objects, "Secret")
    minio_env = container_env(container(objects, "StatefulSet", "retail-etl-minio"))
    assert minio_env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {
        "name": "minio-root",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert container(objects, "Deployment", "retail-etl-dask-worker")["envFrom"] == [
        {"secretRef": {"name": "minio-root"}}
    ]


def test_s3_secret_is_required_without_minio():
    with pytest.raises(HelmError) as failure:
        render_chart({"minio": {"enabled": False}})
    assert (
        "s3.existingSecret (or s3.accessKeyId and s3.secretAccessKey) is required when minio.enabled=false"
        in failure.value.stderr
    )


# -- Prefect server ------------------------------------------------------------------------------


def test_sqlite_refuses_more_than_one_replica():
    with pytest.raises(HelmError) as failure:
        render_chart({"prefectServer": {"replicas": 2}})
    assert "prefectServer.replicas" in failure.value.stderr
    assert "sqlite" in failure.value.stderr


def test_sqlite_server():
    objects = render_chart({"prefectServer": {"uiApiUrl": "https://prefect.example.com/api"}})
    deployment = one(objects, "Deployment", "retail-etl-server")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert command_line(c) == ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"]
    env = container_env(c)
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]["value"] == "sqlite+aiosqlite:////data/prefect.db"
    assert env["PREFECT_UI_API_URL"]["value"] == "https://prefect.example.com/api"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"]["value"] == "false"
    # The UI bundles are copied at start: somewhere writable (not site-packages on the read-only root).
    assert env["PREFECT_UI_STATIC_DIRECTORY"]["value"].startswith("/tmp/")
    assert c["startupProbe"]["httpGet"]["path"] == "/api/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "retail-etl-server-data"}} in volumes


def test_bundled_postgresql():
    objects = render_chart(
        {
            "prefectServer": {"replicas": 3, "database": {"type": "postgresql"}},
            "postgresql": {"enabled": True},
            "redis": {"enabled": True},  # replicas > 1 needs it (test_chart_server_ha.py)
        }
    )
    deployment = one(objects, "Deployment", "retail-etl-server")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = container_env(deployment["spec"]["template"]["spec"]["containers"][0])
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in env
    assert env["PREFECT_SERVER_DATABASE_HOST"]["value"] == "retail-etl-postgresql.retail-etl-dev.svc.cluster.local"
    assert env["PREFECT_SERVER_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "retail-etl-postgresql",
        "key": "password",
    }
    secret = one(objects, "Secret", "retail-etl-postgresql")
    assert len(base64.b64decode(secret["data"]["password"])) == 32
    pg = container(objects, "StatefulSet", "retail-etl-postgresql")
    assert container_env(pg)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "retail-etl-postgresql"


def test_external_postgresql():
    objects = render_chart(
        {
            "prefectServer": {
                "database": {
                    "type": "postgresql",
                    "external": {"existingSecret": "prefect-db", "existingSecretKey": "url"},
                }
            }
        }
    )
    env = container_env(container(objects, "Deployment", "retail-etl-server"))
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "prefect-db",
        "key": "url",
    }


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"prefectServer": {"database": {"type": "postgresql"}}},
            "prefectServer.database.type=postgresql needs postgresql.enabled=true",
        ),
        ({"postgresql": {"enabled": True}}, "postgresql.enabled=true requires"),
        (
            {
                "prefectServer": {"enabled": False},
                "prefectApiUrl": "http://server:4200/api",
                "basicAuth": {"enabled": True},
            },
            "basicAuth.existingSecret (or basicAuth.password) is required when basicAuth.enabled=true and prefectServer.enabled=false",
        ),
        ({"s3": {"accessKeyId": "AKID"}}, "s3.secretAccessKey is required"),
        (
            {"prefectServer": {"ingress": {"enabled": True, "tls": {"enabled": True}}}},
            "prefectServer.ingress.tls.secretName is required",
        ),
    ],
)
def test_required_guards_name_the_value(values, message):
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    assert message in failure.value.stderr


def test_basic_auth_reaches_server_and_every_client():
    objects = render_chart({"basicAuth": {"enabled": True}})
    ref = {"name": "retail-etl-auth", "key": "auth-string"}
    server = container_env(container(objects, "Deployment", "retail-etl-server"))
    assert server["PREFECT_SERVER_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"] == ref
    for kind, name in [
        ("Deployment", "retail-etl-worker"),
        ("Deployment", "retail-etl-dask-worker"),
        ("Job", "retail-etl-register"),
    ]:
        assert (
            container_env(container(objects, kind, name))["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"] == ref
        ), name
    worker = container_env(container(objects, "Deployment", "retail-etl-worker"))
    # Flow-run Jobs get it by reference too.
    assert worker["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME"]["value"] == "retail-etl-auth"
    assert worker["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_KEY"]["value"] == "auth-string"
    user, _, password = (
        base64.b64decode(one(objects, "Secret", "retail-etl-auth")["data"]["auth-string"]).decode().partition(":")
    )
    assert user == "admin" and len(password) == 32


def test_ingress():
    objects = render_chart(
        {
            "prefectServer": {
                "ingress": {
                    "enabled": True,
                    "host": "prefect.example.com",
                    "className": "nginx",
                    "tls": {"enabled": True, "secretName": "tls"},
                }
            }
        }
    )
    ingress = one(objects, "Ingress", "retail-etl-server")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["prefect.example.com"], "secretName": "tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "retail-etl-server", "port": {"name": "http"}}
    policy = one(objects, "NetworkPolicy", "retail-etl-server")
    sources = policy["spec"]["ingress"][0]["from"]
    assert any(
        s.get("namespaceSelector", {}).get("matchExpressions", [{}])[0].get("values") == ["ingress-nginx"]
        for s in sources
        if "podSelector" not in s
    )


# -- MinIO and Dask ------------------------------------------------------------------------------


def test_minio():
    objects = render_chart(namespace="etl")
    statefulset = one(objects, "StatefulSet", "retail-etl-minio")
    c = statefulset["spec"]["template"]["spec"]["containers"][0]
    args = command_line(c)
    assert args[:3] == ["minio", "server", "/data"] and option(args, "--console-address") == ":9001"
    assert c["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    ports = {p["name"]: p["port"] for p in one(objects, "Service", "retail-etl-minio")["spec"]["ports"]}
    assert ports == {"api": 9000, "console": 9001}
    secret = one(objects, "Secret", "retail-etl-minio")
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    job = one(objects, "Job", "retail-etl-make-buckets")
    bucket_container = job["spec"]["template"]["spec"]["containers"][0]
    assert command_line(bucket_container) == ["retail-etl", "make-buckets", "landing", "warehouse-dev"]
    assert bucket_container["image"] == OWN_IMAGE
    assert (
        container_env(bucket_container)["RETAIL_ETL_S3_ENDPOINT_URL"]["value"]
        == "http://retail-etl-minio.etl.svc.cluster.local:9000"
    )
    assert bucket_container["envFrom"] == [{"secretRef": {"name": "retail-etl-minio"}}]
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]


def test_platform_creates_every_environments_bucket():
    job = one(render_environment("platform"), "Job", "retail-etl-make-buckets")
    buckets = command_line(job["spec"]["template"]["spec"]["containers"][0])[2:]
    assert buckets == ["landing", "warehouse-dev", "warehouse-staging", "warehouse-prod"]


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_dask(environment):
    objects = render_environment(environment)
    _, namespace = ENVIRONMENTS[environment]
    settings = ENV_FILES[environment]["dask"]["worker"]
    scheduler = container(objects, "Deployment", "retail-etl-dask-scheduler")
    assert command_line(scheduler) == ["dask", "scheduler", "--port", "8786", "--dashboard-address", ":8787"]
    assert scheduler["livenessProbe"]["tcpSocket"]["port"] == "scheduler"
    assert scheduler["readinessProbe"]["httpGet"] == {"path": "/health", "port": "dashboard"}
    ports = {p["name"]: p["port"] for p in one(objects, "Service", "retail-etl-dask-scheduler")["spec"]["ports"]}
    assert ports == {"scheduler": 8786, "dashboard": 8787}
    deployment = one(objects, "Deployment", "retail-etl-dask-worker")
    assert deployment["spec"]["replicas"] == settings["replicas"]
    worker = deployment["spec"]["template"]["spec"]["containers"][0]
    args = command_line(worker)
    address = f"tcp://retail-etl-dask-scheduler.{namespace}.svc.cluster.local:8786"
    assert args[:3] == ["dask", "worker", address]
    assert option(args, "--nthreads") == str(settings["threads"])
    assert option(args, "--memory-limit") == "0.85"  # of the container's limit, leaving room for the nanny
    assert option(args, "--local-directory") == "/tmp/dask"
    assert option(args, "--dashboard-address") == ":8789"
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "dashboard"}
    assert worker["resources"] == settings["resources"]
    env = container_env(worker)
    assert env["RETAIL_ETL_WAREHOUSE"]["value"] == f"s3://warehouse-{environment}"
    assert env["RETAIL_ETL_S3_ENDPOINT_URL"]["value"] == "http://retail-etl-minio.retail-etl.svc.cluster.local:9000"
    assert worker["envFrom"] == [{"secretRef": {"name": "retail-etl-s3"}}]
    # The flow runs use this scheduler.
    assert base_job_template(objects)["variables"]["properties"]["env"]["default"]["RETAIL_ETL_DASK_ADDRESS"] == address


def test_dask_memory_limit_values():
    assert (
        option(
            command_line(
                container(
                    render_chart({"dask": {"worker": {"memoryLimit": ""}}}), "Deployment", "retail-etl-dask-worker"
                )
            ),
            "--memory-limit",
        )
        == "2Gi"
    )
    assert (
        option(
            command_line(
                container(
                    render_chart({"dask": {"worker": {"memoryLimit": "3GiB"}}}), "Deployment", "retail-etl-dask-worker"
                )
            ),
            "--memory-limit",
        )
        == "3GiB"
    )


def test_prod_has_more_dask_capacity_than_dev():
    def capacity(env):
        worker = ENV_FILES[env]["dask"]["worker"]
        return worker["replicas"] * worker["threads"]

    assert capacity("prod") > capacity("staging") >= capacity("dev")


# -- secrets -------------------------------------------------------------------------------------

SECRET_VALUES = {
    "basicAuth": {"enabled": True, "password": "pa55-word-auth"},
    "minio": {"enabled": False},
    "s3": {
        "endpointUrl": "https://s3.example.com",
        "accessKeyId": "AKIDEXAMPLEKEY",
        "secretAccessKey": "wJalrXUtnFEMI-example-key",
    },
    "prefectServer": {"database": {"type": "postgresql"}},
    "postgresql": {"enabled": True},
}


@pytest.mark.parametrize(
    "values", [None, SECRET_VALUES, KITCHEN_SINK], ids=["defaults", "secrets-from-values", "kitchen-sink"]
)
def test_credentials_only_in_secrets(values):
    objects = render_chart(values)
    secrets = find(objects, "Secret")
    assert secrets
    credentials = {base64.b64decode(v).decode() for s in secrets for v in s["data"].values()}
    credentials |= {c.partition(":")[2] for c in credentials if ":" in c}  # the password of an auth string
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        leaked = [c for c in credentials if c and c in text]
        assert not leaked, f"{obj['kind']}/{obj['metadata']['name']} contains a credential"
    for configmap in find(objects, "ConfigMap"):
        text = json.dumps(configmap["data"])
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AUTH_STRING", "PASSWORD", "auth-string"):
            assert name not in text, f"ConfigMap {configmap['metadata']['name']} mentions {name}"


def test_generated_secrets_survive_upgrades_through_lookup():
    template_dir = CHART / "templates"
    for name in ("minio.yaml", "postgresql.yaml", "auth-secret.yaml"):
        text = (template_dir / name).read_text()
        assert "persistentSecretValue" in text or "lookup" in text, name
    helpers = (template_dir / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers


# -- pod hardening -------------------------------------------------------------------------------


@pytest.mark.parametrize("render", [*ENVIRONMENTS, "kitchen-sink"])
def test_every_pod_is_hardened_and_bounded(render):
    objects = render_chart(KITCHEN_SINK) if render == "kitchen-sink" else render_environment(render)
    templates = pod_templates(objects)
    assert templates
    for owner, _, spec in templates:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, owner
        assert pod["runAsUser"] >= 10000 and pod["runAsGroup"] >= 10000, owner
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert spec["enableServiceLinks"] is False, owner  # no RETAIL_ETL_*/PREFECT_* service variables
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, owner
            assert sc["readOnlyRootFilesystem"] is True, owner
            assert sc["capabilities"] == {"drop": ["ALL"]}, owner
            assert sc.get("privileged", False) is False, owner
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) >= {"cpu", "memory"}, f"{owner}: {bound}"
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), f"{owner}: no writable /tmp"
    for obj in objects:
        # The background services serve no port: nothing to probe (their checkov skips say so).
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] != "retail-etl-background-services":
            for c in obj["spec"]["template"]["spec"]["containers"]:
                assert "livenessProbe" in c and "readinessProbe" in c, obj["metadata"]["name"]


@pytest.mark.parametrize("render", list(ENVIRONMENTS))
def test_every_namespaced_object_names_its_namespace(render):
    _, namespace = ENVIRONMENTS[render]
    for obj in render_environment(render):
        assert obj["metadata"]["namespace"] == namespace, f"{obj['kind']}/{obj['metadata']['name']}"


# -- NetworkPolicies -----------------------------------------------------------------------------


def pod_labels(objects, kind, name):
    return one(objects, kind, name)["spec"]["template"]["metadata"]["labels"]


def flow_run_labels(objects):
    return base_job_template(objects)["job_configuration"]["job_manifest"]["spec"]["template"]["metadata"]["labels"]


def test_network_policies_are_on_by_default():
    objects = render_chart()
    names = {p["metadata"]["name"] for p in find(objects, "NetworkPolicy")}
    assert names == {
        "retail-etl-default-deny",
        "retail-etl-server",
        "retail-etl-minio",
        "retail-etl-dask-scheduler",
        "retail-etl-dask-worker",
    }
    deny = one(objects, "NetworkPolicy", "retail-etl-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    for owner, metadata, _ in pod_templates(objects):
        assert selector_matches(deny["spec"]["podSelector"], metadata["labels"]), f"default-deny misses {owner}"


def test_network_policies_allow_only_the_platform_traffic():
    objects = render_chart(namespace="ns")
    policy = {p["metadata"]["name"].removeprefix("retail-etl-"): p for p in find(objects, "NetworkPolicy")}
    labels = {
        name: pod_labels(objects, kind, f"retail-etl-{name}")
        for kind, name in [
            ("Deployment", "server"),
            ("Deployment", "worker"),
            ("Deployment", "dask-scheduler"),
            ("Deployment", "dask-worker"),
            ("StatefulSet", "minio"),
            ("Job", "register"),
            ("Job", "make-buckets"),
        ]
    }
    labels["flow-run"] = flow_run_labels(objects)
    # Each policy selects its component's pods.
    for name in ("server", "minio", "dask-scheduler", "dask-worker"):
        targets = [n for n, pod in labels.items() if selector_matches(policy[name]["spec"]["podSelector"], pod)]
        assert targets == [name]
    server_clients = {n for n, pod in labels.items() if allowed(policy["server"], pod, "ns", 4200)}
    assert server_clients == {"worker", "register", "make-buckets", "flow-run", "dask-worker"}
    minio_clients = {n for n, pod in labels.items() if allowed(policy["minio"], pod, "ns", 9000)}
    assert minio_clients == server_clients
    assert not any(allowed(policy["minio"], pod, "ns", 9001) for pod in labels.values())  # console: port-forward only
    scheduler_clients = {n for n, pod in labels.items() if allowed(policy["dask-scheduler"], pod, "ns", 8786)}
    assert scheduler_clients == {"flow-run", "dask-worker"}
    worker_peers = {n for n, pod in labels.items() if allowed(policy["dask-worker"], pod, "ns", 8790)}
    assert worker_peers == {"dask-scheduler", "dask-worker", "flow-run"}
    # Another namespace's pods are not clients unless listed.
    assert not allowed(policy["server"], labels["worker"], "elsewhere", 4200)


def test_platform_admits_the_environment_namespaces_clients():
    platform = render_environment("platform")
    server_policy = one(platform, "NetworkPolicy", "retail-etl-server")
    minio_policy = one(platform, "NetworkPolicy", "retail-etl-minio")
    for environment in ("dev", "staging", "prod"):
        _, namespace = ENVIRONMENTS[environment]
        objects = render_environment(environment)
        clients = [
            pod_labels(objects, "Deployment", "retail-etl-worker"),
            pod_labels(objects, "Job", "retail-etl-register"),
            pod_labels(objects, "Deployment", "retail-etl-dask-worker"),
            flow_run_labels(objects),
        ]
        for labels in clients:
            assert allowed(server_policy, labels, namespace, 4200), (environment, labels)
        for labels in clients[1:]:
            assert allowed(minio_policy, labels, namespace, 9000), (environment, labels)
        scheduler = pod_labels(objects, "Deployment", "retail-etl-dask-scheduler")
        assert not allowed(server_policy, scheduler, namespace, 4200)
    assert not allowed(server_policy, flow_run_labels(render_environment("dev")), "some-other-namespace", 4200)


# -- determinism ---------------------------------------------------------------------------------


def without_secret_data(objects):
    return [{k: v for k, v in o.items() if not (o["kind"] == "Secret" and k == "data")} for o in objects]


@pytest.mark.parametrize("render", [*ENVIRONMENTS, "kitchen-sink"])
def test_rendering_is_deterministic(render, tmp_path):
    if render == "kitchen-sink":
        values_file, namespace = tmp_path / "values.yaml", "retail-etl-dev"
        values_file.write_text(yaml.safe_dump(KITCHEN_SINK))
    else:
        values_file, namespace = ENVIRONMENTS[render]
    args = [
        "template",
        "retail-etl",
        str(CHART),
        "--namespace",
        namespace,
        *(["-f", str(values_file)] if values_file else []),
    ]
    first, second = ([d for d in yaml.safe_load_all(run_helm(*args).stdout) if d] for _ in range(2))
    # Only generated Secret values (randAlphaNum, kept across upgrades through lookup) may differ.
    assert without_secret_data(first) == without_secret_data(second)


def test_notes_tell_how_to_reach_the_ui_console_and_trigger_a_run():
    notes = run_helm("install", "retail-etl", str(CHART), "--namespace", "retail-etl-dev", "--dry-run=client").stdout
    notes = notes[notes.index("NOTES:") :]
    assert "kubectl -n retail-etl-dev port-forward svc/retail-etl-server 4200:4200" in notes
    assert "port-forward svc/retail-etl-minio 9001:9001" in notes
    assert "prefect deployment run 'daily-sales-etl/daily-sales-etl-dev'" in notes
    env_notes = run_helm(
        "install",
        "retail-etl",
        str(CHART),
        "--namespace",
        "retail-etl-prod",
        "--dry-run=client",
        "-f",
        str(ENVIRONMENTS["prod"][0]),
    ).stdout
    assert "prefect deployment run 'daily-sales-etl/daily-sales-etl-prod'" in env_notes


WITH_POSTGRESQL = {"postgresql": {"enabled": True}, "prefectServer": {"database": {"type": "postgresql"}}}
# A release name too long for StatefulSets (see the next test) runs without them.
WITHOUT_STATEFULSETS = {"minio": {"enabled": False}, "s3": {"existingSecret": "retail-etl-s3"}}


@pytest.mark.parametrize(
    "release, values",
    [("etl", WITH_POSTGRESQL), ("x" * 53, WITHOUT_STATEFULSETS), ("retail-etl-blue", WITH_POSTGRESQL)],
)
def test_other_release_names_give_unique_valid_names(release, values):
    import kubernetes_validate

    objects = render_chart(values, release=release)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names))
    for kind, name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), (kind, name)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    prefix = release if "retail-etl" in release else f"{release}-retail-etl"
    expected = f"http://{prefix}-server.retail-etl-dev.svc.cluster.local:4200/api"
    if len(f"{prefix}-server") <= 63:
        assert (
            container_env(container(objects, "Deployment", f"{prefix}-worker"))["PREFECT_API_URL"]["value"] == expected
        )
    worker_pod = next(
        spec for owner, _, spec in pod_templates(objects) if owner.endswith("-worker") and "dask" not in owner
    )
    assert worker_pod["volumes"][1]["configMap"]["name"] in {o["metadata"]["name"] for o in find(objects, "ConfigMap")}


@pytest.mark.parametrize("component", ["minio", "postgresql", "redis"])
def test_statefulset_names_longer_than_52_are_refused(component):
    """Kubernetes accepts such a StatefulSet but never creates its pods (controller-revision-hash label)."""
    values = {
        **WITH_POSTGRESQL,
        "redis": {"enabled": component == "redis"},
        "prefectServer": {"replicas": 1, "database": {"type": "postgresql"}},
    }
    release = "a-very-long-release-name-for-the-data-team"  # -retail-etl-minio: 58 characters
    with pytest.raises(HelmError) as refused:
        render_chart(values, release=release)
    assert "Kubernetes creates no pods for StatefulSet names over 52; set fullnameOverride" in refused.value.stderr
    objects = render_chart({**values, "fullnameOverride": "etl"}, release=release)
    for statefulset in find(objects, "StatefulSet"):
        assert len(statefulset["metadata"]["name"]) <= 52


def test_environment_without_deployments_in_prefect_yaml_is_refused_with_registration():
    with pytest.raises(HelmError) as refused:
        render_chart({"environment": "qa"})
    assert "environment=qa: registration.enabled=true registers the deployments" in refused.value.stderr
    assert render_chart({"environment": "qa", "registration": {"enabled": False}})


@pytest.mark.parametrize("key", ["podAnnotations", "extraEnvVars"])
def test_prefect_placeholders_in_flow_run_settings_are_refused(key):
    value = {"vault.hashicorp.com/agent-inject-template-db": "{{ .Data.username }}"}
    if key == "extraEnvVars":
        value = [{"name": "GREETING", "value": "{{ image }}"}]
    with pytest.raises(HelmError) as refused:
        render_chart({"flowRun": {key: value}})
    assert f"flowRun.{key} contains `{{{{`: Prefect's worker treats the base job template" in refused.value.stderr
