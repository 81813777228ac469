"""Helpers of the real-cluster test: the cluster cache k8s/cluster-cache.sh builds, kubectl and
port-forwards against the kind cluster k8s/up.sh creates, and what to print when something fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("RETAIL_ETL_CLUSTER_CACHE", "/var/cache/retail-etl-cluster"))
CLUSTER = "retail-etl-ci"
CONTEXT = f"kind-{CLUSTER}"
# where the releases and the system pods live (what diagnostics covers)
NAMESPACES = ["retail-etl", "retail-etl-dev", "retail-etl-staging", "kube-system", "local-path-storage"]


def cache_script_value(name: str) -> str:
    """A version pinned in k8s/cluster-cache.sh (the one place they are written)."""
    match = re.search(rf"^{name}=(\S+)$", (REPO / "k8s" / "cluster-cache.sh").read_text(), re.M)
    assert match, f"k8s/cluster-cache.sh sets no {name}"
    return match.group(1)


def node_image() -> str:
    return f"retail-etl-kind-node:v{cache_script_value('KUBERNETES_VERSION')}"


def cache_missing() -> list[str]:
    """What of the cluster cache is not there (empty when the cluster test can run)."""
    missing = [str(CACHE / "bin" / tool) for tool in ("kind", "kubectl") if not (CACHE / "bin" / tool).exists()]
    if shutil.which("docker") is None:
        return [*missing, "docker"]
    if subprocess.run(["docker", "image", "inspect", node_image()], capture_output=True).returncode != 0:
        missing.append(node_image())
    return missing


def kubectl(*args: str, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(CACHE / "bin" / "kubectl"), "--context", CONTEXT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result.stdout


@contextmanager
def port_forward(namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward` of `target` (svc/name or pod/name) to a free port on 127.0.0.1."""
    process = subprocess.Popen(
        [str(CACHE / "bin" / "kubectl"), "--context", CONTEXT, "-n", namespace, "port-forward", target, f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"port-forward {namespace}/{target}: {line}"
        yield int(match.group(1))
    finally:
        process.terminate()
        process.wait(timeout=30)


def pods(namespace: str, selector: str) -> list[dict]:
    """The pods in `namespace` that match the label `selector`, as Kubernetes objects."""
    return json.loads(kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]


def ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    deleting = pod["metadata"].get("deletionTimestamp") is not None
    return not deleting and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def replaced(namespace: str, selector: str, timeout: float = 300) -> list[dict]:
    """Delete the pods matching `selector`; the ready pods that replaced them."""
    before = {pod["metadata"]["name"] for pod in pods(namespace, selector)}
    assert before, f"no pod matches {selector} in {namespace}"
    kubectl("-n", namespace, "delete", "pod", "-l", selector, "--wait=true", timeout=timeout)

    def new_ready() -> list[dict]:
        current = pods(namespace, selector)
        fresh = [pod for pod in current if pod["metadata"]["name"] not in before]
        return fresh if fresh and all(ready(pod) for pod in current) else []

    return wait_until(f"pods {selector} in {namespace} replaced", new_ready, timeout=timeout)


def wait_until(what: str, check, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # not there yet
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def diagnostics(namespaces: list[str]) -> str:
    """Pods, events, `kubectl describe` and logs of every pod that is not running and ready."""
    parts = [kubectl("get", "pods", "-A", "-o", "wide", check=False)]
    for namespace in namespaces:
        parts.append(kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False)[-4000:])
        pods = kubectl("-n", namespace, "get", "pods", "-o", "name", check=False).split()
        for pod in pods:
            phase = kubectl("-n", namespace, "get", pod, "-o", "jsonpath={.status.phase}", check=False)
            if phase != "Running":
                parts.append(kubectl("-n", namespace, "describe", pod, check=False)[-4000:])
            parts.append(f"--- logs {namespace}/{pod}\n" + kubectl(
                "-n", namespace, "logs", pod, "--all-containers", "--tail=40", check=False
            ))  # fmt: skip
    return "\n".join(parts)
