"""k8s/up.sh and k8s/down.sh: syntax, shellcheck, and a run against stub tools.

No cluster or Docker engine runs here, so kind, minikube, kubectl, helm and docker are replaced by
stubs that record their arguments; the scripts run for real against them.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest
import yaml
from chartkit import CHART, K8S, REPO, shellcheck_binary

SCRIPTS = [K8S / "up.sh", K8S / "down.sh", K8S / "cluster-cache.sh", REPO / ".ci" / "image", REPO / ".ci" / "lock"]
CLUSTER_UID = "0f0e0d0c-1111-2222-3333-444455556666"

STUB = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Records the call; answers the few queries the scripts read.
    name=$(basename "$0")
    printf '%s %s\\n' "$name" "$*" >> "$STUB_LOG"
    args=" $* "
    case "$name" in
      kind)
        if [[ $args == *" get clusters "* ]]; then [ -f "$STUB_STATE/cluster" ] && echo retail-etl; exit 0; fi
        if [[ $args == *" create cluster "* ]]; then touch "$STUB_STATE/cluster"; fi
        if [[ $args == *" delete cluster "* ]]; then rm -f "$STUB_STATE/cluster"; fi ;;
      minikube)
        if [[ $args == *" status "* ]]; then [ -f "$STUB_STATE/cluster" ]; exit $?; fi
        if [[ $args == *" start "* ]]; then touch "$STUB_STATE/cluster"; fi ;;
      kubectl)
        if [[ $args == *"kube-system"* ]]; then printf '%s' "$STUB_CLUSTER_UID"; exit 0; fi
        if [[ $args == *"jsonpath={.data."* ]]; then printf '%s' "c2VjcmV0LXZhbHVl"; exit 0; fi
        if [[ $args == *" create "* && $args == *"--dry-run=client"* ]]; then cat > /dev/null; echo "kind: Namespace"; fi
        if [[ $args == *" apply "* ]]; then cat > /dev/null; fi ;;
      helm)
        if [[ $args == *" status "* ]]; then exit 0; fi ;;
    esac
    exit 0
    """)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_syntax_and_style(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(script, os.X_OK), f"{script} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run([shellcheck_binary(), "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture
def stubs(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("kind", "minikube", "kubectl", "helm", "docker"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "STUB_LOG": str(log),
        "STUB_STATE": str(state),
        "STUB_CLUSTER_UID": CLUSTER_UID,
    }

    def run(script: str, **settings: str) -> list[str]:
        log.write_text("")
        result = subprocess.run(
            ["bash", str(K8S / script)], env={**env, **settings}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return log.read_text().splitlines()

    return run


def index_of(calls: list[str], *parts: str) -> int:
    for number, call in enumerate(calls):
        if all(part in call for part in parts):
            return number
    raise AssertionError(f"no call with {parts} in:\n" + "\n".join(calls))


def helm_installs(calls):
    return [c for c in calls if c.startswith("helm ") and " upgrade --install " in c]


def test_up_on_kind_installs_platform_then_dev(stubs):
    calls = stubs("up.sh")
    chart, image = str(CHART), "retail-etl:0.1.0"
    create = index_of(calls, "kind create cluster --name retail-etl --config", str(K8S / "kind.yaml"))
    build = index_of(calls, "docker build -f", str(REPO / "docker" / "Dockerfile"), f"-t {image}", str(REPO))
    load = index_of(calls, f"kind load docker-image {image} --name retail-etl")
    platform = index_of(
        calls,
        f"helm --kube-context kind-retail-etl upgrade --install retail-etl {chart} --namespace retail-etl ",
        str(K8S / "values-platform.yaml"),
        "image.tag=0.1.0",
        "--wait",
    )
    s3_secret = index_of(
        calls, "kubectl --context kind-retail-etl -n retail-etl-dev create secret generic retail-etl-s3"
    )
    dev = index_of(
        calls,
        "upgrade --install retail-etl",
        "--namespace retail-etl-dev",
        str(K8S / "values-dev.yaml"),
        f"worker.clusterUid={CLUSTER_UID}",
        "--wait",
    )
    assert create < build < load < platform < s3_secret < dev
    assert len(helm_installs(calls)) == 2
    # The S3 secret name is the one the environment values expect.
    assert yaml.safe_load((K8S / "values-dev.yaml").read_text())["s3"]["existingSecret"] == "retail-etl-s3"
    # Idempotent: a second run reuses the cluster and upgrades the same releases.
    again = stubs("up.sh")
    assert not any("create cluster" in c for c in again)
    assert len(helm_installs(again)) == 2


def test_up_stamps_the_build_id_into_the_image(stubs):
    calls = stubs("up.sh", BUILD_ID="abc1234")
    build = calls[index_of(calls, "docker build -f")]
    assert "--build-arg RETAIL_ETL_BUILD=abc1234 " in build
    assert "--build-arg RETAIL_ETL_VERSION=0.1.0 " in build
    assert re.search(r"--build-arg RETAIL_ETL_CREATED=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", build), build
    # unset, the build id is the checkout's git SHA (when there is a checkout)
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if sha.returncode == 0:
        default = stubs("up.sh")
        assert f"--build-arg RETAIL_ETL_BUILD={sha.stdout.strip()}" in default[index_of(default, "docker build -f")]


def test_up_without_a_registry_uses_the_local_node_image_base_and_an_external_s3(stubs):
    calls = stubs(
        "up.sh",
        KIND_NODE_IMAGE="retail-etl-kind-node:v1.34.4",
        PYTHON_IMAGE="retail-etl-standin-python:bookworm",
        S3_ENDPOINT_URL="http://s3.store.svc.cluster.local:9000",
        AWS_ACCESS_KEY_ID="key-id",
        AWS_SECRET_ACCESS_KEY="secret",
    )
    assert "--image retail-etl-kind-node:v1.34.4" in calls[index_of(calls, "kind create cluster")]
    build = calls[index_of(calls, "docker build -f")]
    assert "--build-arg PYTHON_IMAGE=retail-etl-standin-python:bookworm " in build
    platform, dev = helm_installs(calls)
    assert "minio.enabled=false" in platform and "s3.endpointUrl" not in platform
    assert "s3.endpointUrl=http://s3.store.svc.cluster.local:9000" in dev
    # the environment's S3 Secret holds the given keys; no MinIO Secret is read
    assert not any("jsonpath={.data." in c for c in calls)


def test_up_with_an_external_s3_needs_its_keys(stubs, tmp_path):
    with pytest.raises(AssertionError, match="S3_ENDPOINT_URL needs AWS_ACCESS_KEY_ID"):
        stubs("up.sh", S3_ENDPOINT_URL="http://s3.store:9000", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")


def test_up_installs_every_requested_environment(stubs):
    calls = stubs("up.sh", ENVIRONMENTS="dev staging prod", SKIP_BUILD="1")
    assert not any(c.startswith("docker build") for c in calls)
    namespaces = [c.split("--namespace ")[1].split()[0] for c in helm_installs(calls)]
    assert namespaces == ["retail-etl", "retail-etl-dev", "retail-etl-staging", "retail-etl-prod"]


def test_up_on_minikube(stubs):
    calls = stubs("up.sh", K8S_PROVIDER="minikube")
    start = index_of(calls, "minikube start -p retail-etl")
    load = index_of(calls, "minikube -p retail-etl image load retail-etl:0.1.0")
    platform = index_of(calls, "helm --kube-context retail-etl upgrade --install retail-etl")
    assert start < load < platform
    assert not any(c.startswith("kind ") for c in calls)


def test_up_rejects_unknown_environment(stubs, tmp_path):
    with pytest.raises(AssertionError):
        stubs("up.sh", ENVIRONMENTS="qa")


def test_down_deletes_the_cluster_or_just_the_releases(stubs):
    stubs("up.sh")
    calls = stubs("down.sh")
    index_of(calls, "kind delete cluster --name retail-etl")
    stubs("up.sh")
    calls = stubs("down.sh", KEEP_CLUSTER="1")
    uninstalls = [c for c in calls if " uninstall " in c]
    assert [c.split("--namespace ")[1].split()[0] for c in uninstalls] == [
        "retail-etl-dev",
        "retail-etl-staging",
        "retail-etl-prod",
        "retail-etl",
    ]
    index_of(calls, "kubectl --context kind-retail-etl delete namespace retail-etl-dev")
    assert not any("delete cluster" in c for c in calls)
