"""The highly available Prefect server: more than one API replica shares Prefect's state through
Redis (bundled or external), the background services run as their own Deployment, and what would
lose leases and events (several replicas without Redis) is refused at render time. The last test
runs the rendered API and background-services commands for real against a real Redis."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from chartkit import TOOLS, HelmError, allowed, container_env, find, one, render_chart

NS = "retail-etl-dev"
PG = {"database": {"type": "postgresql"}}
BUNDLED = {"prefectServer": {"replicas": 2, **PG}, "postgresql": {"enabled": True}, "redis": {"enabled": True}}
EXTERNAL = {
    "prefectServer": {
        "replicas": 3,
        "database": {"type": "postgresql", "external": {"existingSecret": "prefect-db"}},
        "redis": {
            "external": {
                "host": "redis.example.internal",
                "port": 6380,
                "db": 2,
                "username": "prefect",
                "ssl": True,
                "existingSecret": "prefect-redis",
                "existingSecretPasswordKey": "password",
            }
        },
    }
}
REDIS_MODULES = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
    "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
}


def api_container(objects):
    return one(objects, "Deployment", "retail-etl-server")["spec"]["template"]["spec"]["containers"][0]


def services_container(objects):
    return one(objects, "Deployment", "retail-etl-background-services")["spec"]["template"]["spec"]["containers"][0]


def refusal(values) -> str:
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    return failure.value.stderr


# -- bundled Redis ------------------------------------------------------------------------------


def test_bundled_redis_shares_prefects_state_between_api_and_services():
    objects = render_chart(BUNDLED)
    api, services = api_container(objects), services_container(objects)
    assert api["command"] == ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200", "--no-services"]
    assert services["command"] == ["prefect", "server", "services", "start"]
    assert one(objects, "Deployment", "retail-etl-server")["spec"]["replicas"] == 2
    assert one(objects, "Deployment", "retail-etl-background-services")["spec"]["replicas"] == 1
    host = "retail-etl-redis.retail-etl-dev.svc.cluster.local"
    password = {"secretKeyRef": {"name": "retail-etl-redis", "key": "redis-password"}}
    for c in (api, services):
        env = container_env(c)
        for name, module in REDIS_MODULES.items():
            assert env[name]["value"] == module, name
        for prefix in ("PREFECT_REDIS_MESSAGING", "PREFECT_REDIS_WORKER_CLEANUP_QUEUE"):
            assert env[f"{prefix}_HOST"]["value"] == host
            assert env[f"{prefix}_PORT"]["value"] == "6379"
            assert env[f"{prefix}_DB"]["value"] == "0"
            assert env[f"{prefix}_SSL"]["value"] == "false"
            assert env[f"{prefix}_PASSWORD"]["valueFrom"] == password
            assert f"{prefix}_USERNAME" not in env
        # The password reaches the docket URL through $(VAR) expansion of an entry defined before it.
        names = [e["name"] for e in c["env"]]
        assert names.index("PREFECT_REDIS_MESSAGING_PASSWORD") < names.index("PREFECT_SERVER_DOCKET_URL")
        assert (
            env["PREFECT_SERVER_DOCKET_URL"]["value"] == f"redis://:$(PREFECT_REDIS_MESSAGING_PASSWORD)@{host}:6379/0"
        )
        # Both talk to the same PostgreSQL.
        assert env["PREFECT_SERVER_DATABASE_HOST"]["value"] == "retail-etl-postgresql.retail-etl-dev.svc.cluster.local"
    # The services process carries the API's database and Redis settings exactly.
    shared = {k: v for k, v in container_env(api).items() if k.startswith(("PREFECT_REDIS", "PREFECT_SERVER_D"))}
    shared |= {k: container_env(api)[k] for k in REDIS_MODULES}
    assert {k: container_env(services)[k] for k in shared} == shared


def test_bundled_redis_statefulset_is_pinned_non_root_and_keeps_its_password_out_of_the_spec():
    objects = render_chart(BUNDLED)
    statefulset = one(objects, "StatefulSet", "retail-etl-redis")
    spec = statefulset["spec"]["template"]["spec"]
    (redis,) = spec["containers"]
    assert re.fullmatch(r"docker\.io/library/redis:7\.\d+\.\d+-alpine", redis["image"]), redis["image"]
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"] is True
    assert redis["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in redis["volumeMounts"]} == {"/data", "/tmp"}
    # No persistence by default: an emptyDir, no RDB snapshots, no append-only file.
    assert {"name": "data", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]
    assert "volumeClaimTemplates" not in statefulset["spec"]
    script = redis["command"][2]
    assert "--appendonly no --save ''" in script
    env = container_env(redis)
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "retail-etl-redis", "key": "redis-password"}
    assert env["REDISCLI_AUTH"]["valueFrom"] == env["REDIS_PASSWORD"]["valueFrom"]
    assert "requirepass" not in " ".join(redis["command"][:2]) and "$REDIS_PASSWORD" in script
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "redis-cli -p 6379 ping" in redis[probe]["exec"]["command"][-1]
    secret = one(objects, "Secret", "retail-etl-redis")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", base64.b64decode(secret["data"]["redis-password"]).decode())
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = one(objects, "Service", "retail-etl-redis")
    assert service["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]


def test_bundled_redis_persistence_and_existing_secret():
    objects = render_chart(
        {
            **BUNDLED,
            "redis": {
                "enabled": True,
                "existingSecret": "my-redis",
                "existingSecretPasswordKey": "pw",
                "persistence": {"enabled": True, "size": "5Gi", "storageClass": "fast"},
            },
        }
    )
    assert not find(objects, "Secret", "retail-etl-redis")
    statefulset = one(objects, "StatefulSet", "retail-etl-redis")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    (redis,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert "--appendonly yes" in redis["command"][2]
    assert container_env(redis)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "my-redis", "key": "pw"}
    for c in (api_container(objects), services_container(objects)):
        assert container_env(c)["PREFECT_REDIS_MESSAGING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "my-redis",
            "key": "pw",
        }


# -- external Redis -----------------------------------------------------------------------------


def test_external_redis_with_existing_secret():
    objects = render_chart(EXTERNAL)
    assert not find(objects, "StatefulSet", "retail-etl-redis")
    assert not find(objects, "Secret", "retail-etl-redis")
    assert not find(objects, "NetworkPolicy", "retail-etl-redis")
    for c in (api_container(objects), services_container(objects)):
        env = container_env(c)
        assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]["valueFrom"]["secretKeyRef"]["name"] == "prefect-db"
        for prefix in ("PREFECT_REDIS_MESSAGING", "PREFECT_REDIS_WORKER_CLEANUP_QUEUE"):
            assert env[f"{prefix}_HOST"]["value"] == "redis.example.internal"
            assert env[f"{prefix}_PORT"]["value"] == "6380"
            assert env[f"{prefix}_DB"]["value"] == "2"
            assert env[f"{prefix}_SSL"]["value"] == "true"
            assert env[f"{prefix}_USERNAME"]["value"] == "prefect"
            assert env[f"{prefix}_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "prefect-redis",
                "key": "password",
            }
        assert (
            env["PREFECT_SERVER_DOCKET_URL"]["value"]
            == "rediss://prefect:$(PREFECT_REDIS_MESSAGING_PASSWORD)@redis.example.internal:6380/2"
        )


def test_external_redis_without_password():
    values = {
        "prefectServer": {"replicas": 2, **PG, "redis": {"external": {"host": "redis.internal"}}},
        "postgresql": {"enabled": True},
    }
    env = container_env(api_container(render_chart(values)))
    assert "PREFECT_REDIS_MESSAGING_PASSWORD" not in env
    assert env["PREFECT_SERVER_DOCKET_URL"]["value"] == "redis://redis.internal:6379/0"


# -- one replica, separate services ----------------------------------------------------------------


def test_one_replica_keeps_services_in_the_api_pod_and_no_redis_settings():
    objects = render_chart()
    assert not find(objects, "Deployment", "retail-etl-background-services")
    assert not find(objects, "PodDisruptionBudget", "retail-etl-server")
    api = api_container(objects)
    assert "--no-services" not in api["command"]
    assert not set(REDIS_MODULES) & set(container_env(api))


def test_run_as_separate_deployment_with_one_replica():
    objects = render_chart(
        {
            "prefectServer": {"backgroundServices": {"runAsSeparateDeployment": True}, **PG},
            "postgresql": {"enabled": True},
            "redis": {"enabled": True},
        }
    )
    assert "--no-services" in api_container(objects)["command"]
    assert services_container(objects)["command"] == ["prefect", "server", "services", "start"]
    assert not [
        o for o in find(objects, "PodDisruptionBudget") if o["metadata"]["name"] != "retail-etl-dask-worker"
    ]  # one replica of each (the 2 default Dask workers have theirs)


def test_redis_with_one_combined_server_still_shares_state_through_it():
    """Redis without the split: the one server keeps leases and events across its restarts."""
    env = container_env(
        api_container(render_chart({"prefectServer": PG, "postgresql": {"enabled": True}, "redis": {"enabled": True}}))
    )
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"]["value"] == "prefect_redis.lease_storage"


# -- refusals -------------------------------------------------------------------------------------


def test_more_replicas_without_redis_are_refused_naming_the_fix():
    stderr = refusal({"prefectServer": {"replicas": 2, **PG}, "postgresql": {"enabled": True}})
    assert (
        "prefectServer.replicas=2 needs Redis, shared by every server process (Prefect's event broker, cache and "
        "concurrency leases would otherwise stay in each process's memory): set redis.enabled=true (bundled) or "
        "prefectServer.redis.external.host (external)"
    ) in stderr


def test_separate_services_without_redis_are_refused():
    stderr = refusal(
        {
            "prefectServer": {"backgroundServices": {"runAsSeparateDeployment": True}, **PG},
            "postgresql": {"enabled": True},
        }
    )
    assert "prefectServer.backgroundServices.runAsSeparateDeployment=true needs Redis" in stderr
    assert "set redis.enabled=true (bundled) or prefectServer.redis.external.host (external)" in stderr


def test_sqlite_with_more_replicas_stays_refused_even_with_redis():
    stderr = refusal({"prefectServer": {"replicas": 2}, "redis": {"enabled": True}})
    assert "prefectServer.replicas=2 is not allowed with prefectServer.database.type=sqlite" in stderr


def test_sqlite_with_separate_services_is_refused():
    stderr = refusal(
        {"prefectServer": {"backgroundServices": {"runAsSeparateDeployment": True}}, "redis": {"enabled": True}}
    )
    assert (
        "prefectServer.backgroundServices.runAsSeparateDeployment=true is not allowed with "
        "prefectServer.database.type=sqlite: the SQLite volume can be mounted by one pod only; use "
        "prefectServer.database.type=postgresql"
    ) in stderr


def test_bundled_and_external_redis_are_exclusive():
    stderr = refusal({**BUNDLED, "prefectServer": {**BUNDLED["prefectServer"], "redis": {"external": {"host": "r"}}}})
    assert (
        "redis.enabled=true and prefectServer.redis.external.host are mutually exclusive: use the bundled Redis or "
        "an external one"
    ) in stderr


def test_bundled_redis_needs_the_server():
    stderr = refusal(
        {"prefectServer": {"enabled": False}, "prefectApiUrl": "http://x:4200/api", "redis": {"enabled": True}}
    )
    assert "redis.enabled=true requires prefectServer.enabled=true" in stderr


def test_schema_rejects_zero_services_replicas_and_unknown_redis_keys():
    assert "minimum" in refusal(
        {**BUNDLED, "prefectServer": {**BUNDLED["prefectServer"], "backgroundServices": {"replicas": 0}}}
    )
    assert "additional properties 'url' not allowed" in refusal(
        {"prefectServer": {"redis": {"external": {"url": "redis://x"}}}}
    )


# -- PodDisruptionBudgets ----------------------------------------------------------------------------


def test_server_pdb_when_replicas_exceed_one():
    objects = render_chart(BUNDLED)
    pdb = one(objects, "PodDisruptionBudget", "retail-etl-server")
    assert pdb["spec"]["maxUnavailable"] == 1
    deployment = one(objects, "Deployment", "retail-etl-server")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert not find(objects, "PodDisruptionBudget", "retail-etl-background-services")

    custom = render_chart(
        {
            **BUNDLED,
            "prefectServer": {
                **BUNDLED["prefectServer"],
                "podDisruptionBudget": {"minAvailable": 1},
                "backgroundServices": {"replicas": 2, "podDisruptionBudget": {"maxUnavailable": "50%"}},
            },
        }
    )
    assert one(custom, "PodDisruptionBudget", "retail-etl-server")["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in one(custom, "PodDisruptionBudget", "retail-etl-server")["spec"]
    services_pdb = one(custom, "PodDisruptionBudget", "retail-etl-background-services")
    assert services_pdb["spec"]["maxUnavailable"] == "50%"
    assert services_pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "background-services"


# -- NetworkPolicies ------------------------------------------------------------------------------


def pod_labels(objects, kind, name):
    return one(objects, kind, name)["spec"]["template"]["metadata"]["labels"]


def test_only_the_server_and_services_reach_redis_and_postgresql():
    objects = render_chart(BUNDLED)
    redis_policy = one(objects, "NetworkPolicy", "retail-etl-redis")
    pg_policy = one(objects, "NetworkPolicy", "retail-etl-postgresql")
    assert redis_policy["spec"]["podSelector"]["matchExpressions"][0]["values"] == ["redis"]
    server = pod_labels(objects, "Deployment", "retail-etl-server")
    services = pod_labels(objects, "Deployment", "retail-etl-background-services")
    for labels in (server, services):
        assert allowed(redis_policy, labels, NS, 6379)
        assert allowed(pg_policy, labels, NS, 5432)
        assert not allowed(redis_policy, labels, "other-namespace", 6379)
        assert not allowed(redis_policy, labels, NS, 6380)
    for name in ("retail-etl-worker", "retail-etl-dask-worker", "retail-etl-dask-scheduler"):
        assert not allowed(redis_policy, pod_labels(objects, "Deployment", name), NS, 6379), name
    assert not allowed(redis_policy, pod_labels(objects, "StatefulSet", "retail-etl-minio"), NS, 6379)
    flow_run = {"app.kubernetes.io/instance": "retail-etl", "retail-etl/role": "flow-run"}
    assert not allowed(redis_policy, flow_run, NS, 6379)
    # Redis and the background services are under the default deny like every pod of the release.
    deny = one(objects, "NetworkPolicy", "retail-etl-default-deny")["spec"]["podSelector"]
    for labels in (services, pod_labels(objects, "StatefulSet", "retail-etl-redis")):
        assert labels["app.kubernetes.io/instance"] == deny["matchLabels"]["app.kubernetes.io/instance"]
        assert "retail-etl/role" in labels


# -- per-component pod settings ------------------------------------------------------------------


def test_per_component_pod_settings_of_services_and_redis():
    block = {
        "serviceAccount": {"annotations": {"example.com/role": "x"}},
        "podAnnotations": {"example.com/scrape": "true"},
        "podLabels": {"team": "data"},
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "priorityClassName": "high",
        "extraEnvVars": [{"name": "EXTRA", "value": "1"}],
        "extraVolumes": [{"name": "extra", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}],
    }
    objects = render_chart(
        {
            **BUNDLED,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "global", "operator": "Exists"}],
            "prefectServer": {**BUNDLED["prefectServer"], "backgroundServices": block},
            "redis": {"enabled": True, **block},
        }
    )
    for kind, name in (("Deployment", "retail-etl-background-services"), ("StatefulSet", "retail-etl-redis")):
        template = one(objects, kind, name)["spec"]["template"]
        spec, c = template["spec"], template["spec"]["containers"][0]
        assert template["metadata"]["labels"]["team"] == "data"
        assert template["metadata"]["labels"]["retail-etl/role"] in ("background-services", "redis")
        assert template["metadata"]["annotations"] == {"example.com/scrape": "true"}
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "system"}
        assert [t["key"] for t in spec["tolerations"]] == ["global", "system"]
        assert spec["affinity"] == block["affinity"] and spec["priorityClassName"] == "high"
        assert container_env(c)["EXTRA"]["value"] == "1"
        assert {"name": "extra", "emptyDir": {}} in spec["volumes"]
        assert {"name": "extra", "mountPath": "/extra"} in c["volumeMounts"]
        account = one(objects, "ServiceAccount", spec["serviceAccountName"])
        assert account["metadata"]["annotations"] == {"example.com/role": "x"}
        assert account["automountServiceAccountToken"] is False and spec["automountServiceAccountToken"] is False

    existing = render_chart(
        {
            **BUNDLED,
            "prefectServer": {
                **BUNDLED["prefectServer"],
                "backgroundServices": {"serviceAccount": {"create": False, "name": "shared"}},
            },
        }
    )
    assert not find(existing, "ServiceAccount", "retail-etl-background-services")
    spec = one(existing, "Deployment", "retail-etl-background-services")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "shared"
    assert (
        "prefectServer.backgroundServices.serviceAccount.name is required when "
        "prefectServer.backgroundServices.serviceAccount.create=false"
    ) in refusal(
        {
            **BUNDLED,
            "prefectServer": {**BUNDLED["prefectServer"], "backgroundServices": {"serviceAccount": {"create": False}}},
        }
    )


def test_services_get_the_api_auth_string_for_in_process_api_calls():
    objects = render_chart({**BUNDLED, "basicAuth": {"enabled": True}})
    env = container_env(services_container(objects))
    assert env["PREFECT_SERVER_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]["name"] == "retail-etl-auth"


# -- for real: the rendered commands and env against a real Redis -----------------------------------

REDIS_DEBS = ("redis-tools", "libjemalloc2", "liblzf1")


def redis_server_binary() -> tuple[str, dict[str, str]]:
    """(redis-server, extra env): on PATH, else Debian's own build (apt-get download of redis-tools
    and its two libraries, unpacked into .cache/tools/redis; redis-server is redis-check-rdb by
    another name). A tool that cannot be obtained fails the test."""
    if on_path := shutil.which("redis-server"):
        return on_path, {}
    root = TOOLS / "redis"
    binary = root / "redis-server"
    libs = root / "usr" / "lib" / "x86_64-linux-gnu"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as work:
            download = subprocess.run(["apt-get", "download", *REDIS_DEBS], cwd=work, capture_output=True, text=True)
            if download.returncode != 0:  # a machine whose package lists were never fetched
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
                download = subprocess.run(
                    ["apt-get", "download", *REDIS_DEBS], cwd=work, capture_output=True, text=True
                )
            if download.returncode != 0:
                pytest.fail(
                    f"cannot obtain redis-server (PATH or apt-get download {' '.join(REDIS_DEBS)}): {download.stderr}"
                )
            for deb in Path(work).glob("*.deb"):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        shutil.copy(root / "usr" / "bin" / "redis-check-rdb", root / "redis-server.partial")
        (root / "redis-server.partial").replace(binary)
    return str(binary), {"LD_LIBRARY_PATH": str(libs)}


def resolve_env(container: dict, secrets: dict[tuple[str, str], str], overrides: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: Secret references resolved, `overrides`
    applied, then $(VAR) expanded from the entries defined before."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        name = entry["name"]
        if name in overrides:
            value = overrides[name]
        elif "value" in entry:
            value = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        env[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def wait_until(check, timeout: float, what: str, processes=(), errors: tuple[type[Exception], ...] = ()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in processes:
            if process.poll() is not None:
                pytest.fail(
                    f"{process.args} exited with {process.returncode} while waiting for {what}:\n{log.read_text()[-4000:]}"
                )
        try:
            if result := check():
                return result
        except (httpx.HTTPError, OSError, *errors):
            pass
        time.sleep(0.3)
    details = "\n".join(log.read_text()[-3000:] for _, log in processes)
    pytest.fail(f"timed out waiting for {what}\n{details}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two Prefect server processes and Redis: about 30 s on an idle machine
def test_rendered_api_and_services_share_events_and_leases_through_a_real_redis(tmp_path):
    """The chart's Redis command, API command and services command with the env the chart renders
    (Secrets resolved, $(VAR) expanded; only hosts, ports, paths and the database swapped for local
    ones: SQLite stands in for PostgreSQL). An event the API publishes is stored by the event
    persister of the *other* process, which only a shared broker makes possible, and a
    concurrency lease taken through the API is in Redis."""
    import redis as redis_client

    objects = render_chart(BUNDLED)
    password = uuid.uuid4().hex
    secrets = {("retail-etl-redis", "redis-password"): password, ("retail-etl-postgresql", "password"): "unused"}

    # Redis: the StatefulSet's own start script, with local paths and port.
    redis_binary, redis_env = redis_server_binary()
    redis_port, api_port = free_port(), free_port()
    (redis_container,) = one(objects, "StatefulSet", "retail-etl-redis")["spec"]["template"]["spec"]["containers"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-server").symlink_to(redis_binary)
    script = (
        redis_container["command"][2]
        .replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
        .replace("--dir /data", f"--dir {tmp_path}")
        .replace("--port 6379", f"--port {redis_port} --bind 127.0.0.1")
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REDIS"))}
    processes = []
    redis_log = tmp_path / "redis.log"
    redis_process = subprocess.Popen(
        redis_container["command"][:2] + [script],
        env={**base, **redis_env, "PATH": f"{bin_dir}:{base['PATH']}", **resolve_env(redis_container, secrets, {})},
        stdout=redis_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    processes.append((redis_process, redis_log))
    try:
        client = redis_client.Redis(host="127.0.0.1", port=redis_port, password=password, decode_responses=True)
        wait_until(client.ping, 20, "redis", processes, errors=(redis_client.ConnectionError,))
        with pytest.raises(redis_client.AuthenticationError):
            redis_client.Redis(host="127.0.0.1", port=redis_port).ping()  # the password is required

        local = {
            "HOME": str(tmp_path),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_UI_STATIC_DIRECTORY": str(tmp_path / "ui"),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(api_port),
            "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1",
            "PREFECT_REDIS_MESSAGING_PORT": str(redis_port),
            "PREFECT_REDIS_WORKER_CLEANUP_QUEUE_HOST": "127.0.0.1",
            "PREFECT_REDIS_WORKER_CLEANUP_QUEUE_PORT": str(redis_port),
        }
        # Not the chart's concern, only this test's speed: no UI bundle to copy, events published
        # and persisted within a second instead of ten.
        extra = {
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path}/prefect.db",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_REDIS_MESSAGING_PUBLISHER_PUBLISH_EVERY": "1",
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
        }

        def start(container, name):
            env = resolve_env(container, secrets, local)
            env = {k: v for k, v in env.items() if not k.startswith("PREFECT_SERVER_DATABASE_")} | extra
            host = "retail-etl-redis.retail-etl-dev.svc.cluster.local:6379"
            assert host in env["PREFECT_SERVER_DOCKET_URL"]
            env["PREFECT_SERVER_DOCKET_URL"] = env["PREFECT_SERVER_DOCKET_URL"].replace(host, f"127.0.0.1:{redis_port}")
            assert env["PREFECT_SERVER_DOCKET_URL"] == f"redis://:{password}@127.0.0.1:{redis_port}/0"
            command = [a.replace("0.0.0.0", "127.0.0.1").replace("4200", str(api_port)) for a in container["command"]]
            assert command[0] == "prefect"
            log = tmp_path / f"{name}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", *command],
                env={**base, **env},
                cwd=tmp_path,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            processes.append((process, log))

        start(api_container(objects), "api")
        api = f"http://127.0.0.1:{api_port}/api"
        wait_until(lambda: httpx.get(f"{api}/ready", timeout=2).status_code == 200, 120, "the API", processes)
        start(services_container(objects), "services")

        flow = httpx.post(f"{api}/flows/", json={"name": "ha-check"}, timeout=10).json()
        run = httpx.post(f"{api}/flow_runs/", json={"flow_id": flow["id"], "name": "ha-run"}, timeout=10).json()
        assert run["state"]["type"] == "PENDING"

        def stored_events():
            body = {"filter": {"resource": {"id": [f"prefect.flow-run.{run['id']}"]}}}
            found = httpx.post(f"{api}/events/filter", json=body, timeout=5).json()["events"]
            return [e["event"] for e in found]

        events = wait_until(stored_events, 60, "the flow run's event in the database", processes)
        assert "prefect.flow-run.Pending" in events

        httpx.post(
            f"{api}/v2/concurrency_limits/", json={"name": "ha-limit", "limit": 1}, timeout=10
        ).raise_for_status()
        lease = httpx.post(
            f"{api}/v2/concurrency_limits/increment-with-lease",
            json={"names": ["ha-limit"], "slots": 1, "mode": "concurrency", "lease_duration": 60},
            timeout=10,
        )
        lease.raise_for_status()
        assert client.exists(f"prefect:concurrency:lease:{lease.json()['lease_id']}")
        assert client.exists("events")  # the broker's stream
        # Both processes' docket (the API's background worker and the services') coordinate in Redis.
        assert client.exists("prefect-server:workers") and client.exists("prefect:workers")
    finally:
        for process, _ in processes:
            process.kill()  # nothing of theirs outlives the test: the data is in tmp_path
            process.wait(timeout=20)
