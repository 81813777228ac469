"""The releases `k8s/up.sh` installed: `helm test` green, and the chart's NetworkPolicies enforced
for real (kube-router's firewall): the flow's traffic is admitted, a pod outside the allowed set
cannot reach the Prefect server or the Dask scheduler."""

from __future__ import annotations

import json
import subprocess

from clusterkit import CONTEXT, kubectl, wait_until

SERVER = "retail-etl-server.retail-etl.svc.cluster.local"
SCHEDULER = "retail-etl-dask-scheduler.retail-etl-dev.svc.cluster.local"
TRYING = 30  # seconds a probe keeps trying to connect
FLOW_RUN = {"app.kubernetes.io/instance": "retail-etl", "retail-etl/role": "flow-run"}


def test_helm_test_passes_in_every_release(cluster):
    for namespace in ["retail-etl", "retail-etl-dev"]:
        result = subprocess.run(["helm", "--kube-context", CONTEXT, "test", "retail-etl", "-n", namespace, "--logs"],
                                env=cluster["env"], capture_output=True, text=True, timeout=600)  # fmt: skip
        assert result.returncode == 0, f"helm test in {namespace}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"


def connects(namespace: str, labels: dict[str, str], host: str, port: int) -> bool:
    """Whether a throwaway pod with these labels in `namespace` opens a TCP connection to host:port."""
    deployment = json.loads(kubectl("-n", "retail-etl-dev", "get", "deploy/retail-etl-dask-worker", "-o", "json"))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    name = f"probe-{abs(hash((namespace, host, port, tuple(labels.items())))) % 10**8}"
    # a new pod's address reaches the policy rules a moment after it starts: try for a while
    script = (
        "import socket, sys, time\n"
        f"deadline = time.monotonic() + {TRYING}\n"
        "while time.monotonic() < deadline:\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        f"    if s.connect_ex(({host!r}, {port})) == 0: sys.exit(0)\n"
        "    s.close(); time.sleep(1)\n"
        "sys.exit(3)\n"
    )
    label_args = [f"--labels={','.join(f'{k}={v}' for k, v in labels.items())}"] if labels else []
    kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=true", timeout=120)
    kubectl("-n", namespace, "run", name, f"--image={image}", "--image-pull-policy=Never", "--restart=Never",
            *label_args, "--command", "--", "python", "-c", script)  # fmt: skip

    def phase() -> str:
        current = kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        return current if current in ("Succeeded", "Failed") else ""

    outcome = wait_until(f"probe pod {namespace}/{name}", phase, timeout=120 + TRYING)
    kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)
    return outcome == "Succeeded"


def test_network_policies_are_enforced(cluster):
    kubectl("create", "namespace", "outsider", check=False)
    # the flow's traffic is admitted ...
    assert connects("retail-etl-dev", FLOW_RUN, SERVER, 4200)
    assert connects("retail-etl-dev", FLOW_RUN, SCHEDULER, 8786)
    # ... a pod outside the allowed set is not
    assert not connects("outsider", {}, SERVER, 4200)
    assert not connects("outsider", {}, SCHEDULER, 8786)
    assert not connects("retail-etl-dev", {"app": "intruder"}, SCHEDULER, 8786)
