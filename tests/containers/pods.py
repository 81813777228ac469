"""Runs the chart's pods as Docker containers, the way the kubelet would run them.

From a `helm template` render, each container becomes one `docker run` with what its pod spec
says: the command and args (`$(VAR)` references expanded from its env, as Kubernetes does), the
env and envFrom (values from the rendered Secrets and ConfigMaps, `fieldRef` for the pod's name
and namespace), the user and group, `fsGroup` as a supplementary group and the owner of its
volumes, a read-only root filesystem, dropped capabilities, no privilege escalation, the CPU and
memory limits, and its volumes (emptyDir as tmpfs of the same size limit, ConfigMaps and Secrets
as read-only files, a PersistentVolumeClaim as a Docker volume). The containers share one Docker
network on which each Service's name (short and fully qualified) is an alias of its pods, so the
URLs the chart renders resolve unchanged. Anything the translation does not know fails loudly
instead of being skipped.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from chartkit import REPO, render_chart_text

#: The label every container, volume and network of one smoke run carries (for clean-up).
RUN_LABEL = "retail-etl-smoke"


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def moto_image() -> str:
    """The S3 server image .ci/image builds: tagged with the lock's moto version."""
    locked = re.search(r"^moto==([^\s;]+)", (REPO / "requirements" / "dev.txt").read_text(), re.M)
    assert locked, "requirements/dev.txt pins no moto"
    return f"retail-etl-test-s3:moto-{locked.group(1)}"


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


@dataclass(frozen=True)
class Render:
    """One `helm template` render: its objects, and the Secrets and ConfigMaps they reference."""

    objects: list[dict]
    namespace: str

    @classmethod
    def of(cls, values: dict | None, namespace: str, release: str = "retail-etl") -> Render:
        text = render_chart_text(values, namespace=namespace, release=release)
        return cls([doc for doc in yaml.safe_load_all(text) if doc], namespace)

    def named(self, kind: str, name: str) -> dict:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"the render has {len(found)} {kind}/{name}"
        return found[0]

    def secret(self, name: str) -> dict[str, str]:
        secret = self.named("Secret", name)
        decoded = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        return {**decoded, **(secret.get("stringData") or {})}

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.named("ConfigMap", name).get("data") or {})

    def pod_spec(self, kind: str, name: str) -> dict:
        return self.named(kind, name)["spec"]["template"]["spec"]

    def service_names(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects if o["kind"] == "Service"]


def service_aliases(service: str, namespace: str) -> list[str]:
    """Every name a pod may use for a Service: short, namespaced and fully qualified."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined one is kept,
    and `$$` is a literal `$`.

    >>> expand("--name $(POD_NAME) $(MISSING) $$(POD_NAME)", {"POD_NAME": "w-1"})
    '--name w-1 $(MISSING) $(POD_NAME)'
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_FACTORS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity in bytes.

    >>> quantity_bytes("256Mi"), quantity_bytes("1G"), quantity_bytes("512")
    (268435456, 1000000000, 512)
    """
    match = _QUANTITY.match(str(text))
    assert match and match.group(2) != "m", f"not a memory quantity: {text!r}"
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def cpu_cores(text: str) -> float:
    """A Kubernetes CPU quantity in cores.

    >>> cpu_cores("500m"), cpu_cores("2")
    (0.5, 2.0)
    """
    text = str(text)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


@dataclass
class Pod:
    """One pod of the render (or the flow-run Job's) and where its containers run."""

    name: str
    spec: dict
    render: Render
    workdir: Path
    run_id: str
    network: str
    aliases: list[str] = field(default_factory=list)

    @property
    def security(self) -> dict:
        return self.spec.get("securityContext") or {}

    def env(self, container: dict) -> dict[str, str]:
        """The container's environment: envFrom first, then env in order (later entries may refer
        to earlier ones with $(VAR))."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                values = self.render.secret(source["secretRef"]["name"])
            elif "configMapRef" in source:
                values = self.render.config_map(source["configMapRef"]["name"])
            else:
                raise AssertionError(f"{self.name}: envFrom {source} is not supported")
            env.update({prefix + key: value for key, value in values.items()})
        for entry in container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = expand(str(entry["value"]), env)
            elif "valueFrom" in entry:
                value = self._value_from(entry["valueFrom"])
                if value is not None:
                    env[entry["name"]] = value
            else:
                env[entry["name"]] = ""
        return env

    def _value_from(self, source: dict) -> str | None:
        if "secretKeyRef" in source:
            ref, values = source["secretKeyRef"], self.render.secret(source["secretKeyRef"]["name"])
        elif "configMapKeyRef" in source:
            ref, values = source["configMapKeyRef"], self.render.config_map(source["configMapKeyRef"]["name"])
        elif "fieldRef" in source:
            fields = {"metadata.name": self.name, "metadata.namespace": self.render.namespace}
            path = source["fieldRef"]["fieldPath"]
            assert path in fields, f"{self.name}: fieldRef {path} is not supported"
            return fields[path]
        else:
            raise AssertionError(f"{self.name}: valueFrom {source} is not supported")
        if ref["key"] not in values:
            assert ref.get("optional"), f"{self.name}: {ref['name']} has no key {ref['key']}"
            return None
        return values[ref["key"]]

    def _user(self, container: dict) -> list[str]:
        context = {**self.security, **(container.get("securityContext") or {})}
        args = []
        if "runAsUser" in context:
            user = str(context["runAsUser"])
            args += ["--user", f"{user}:{context['runAsGroup']}" if "runAsGroup" in context else user]
        if "fsGroup" in self.security:
            args += ["--group-add", str(self.security["fsGroup"])]
        return args

    def _hardening(self, container: dict) -> list[str]:
        context = container.get("securityContext") or {}
        assert not context.get("privileged"), f"{self.name}: a privileged container"
        args = []
        if context.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = context.get("capabilities") or {}
        args += [f"--cap-drop={name}" for name in capabilities.get("drop", [])]
        args += [f"--cap-add={name}" for name in capabilities.get("add", [])]
        if context.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(cpu_cores(limits["cpu"]))]
        return args

    def container_name(self, container: dict) -> str:
        """Unique per smoke run, so two runs on one engine never collide."""
        return f"{self.name}-{container['name']}-{self.run_id}"

    def volume_name(self, claim: str) -> str:
        return f"{RUN_LABEL}-{self.run_id}-{claim}"

    def _mounts(self, container: dict) -> list[str]:
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes") or []}
        args = []
        for mount in container.get("volumeMounts") or []:
            assert "subPath" not in mount, f"{self.name}: subPath mounts are not supported"
            volume, target = volumes[mount["name"]], mount["mountPath"]
            read_only = ",readonly" if mount.get("readOnly") else ""
            if "emptyDir" in volume:
                size = (volume["emptyDir"] or {}).get("sizeLimit")
                size_option = f",tmpfs-size={quantity_bytes(size)}" if size else ""
                args += ["--mount", f"type=tmpfs,destination={target},tmpfs-mode=1777{size_option}"]
            elif "configMap" in volume or "secret" in volume:
                folder = self._files(volume)
                args += ["--mount", f"type=bind,source={folder},destination={target},readonly"]
            elif "persistentVolumeClaim" in volume:
                name = self.volume_name(volume["persistentVolumeClaim"]["claimName"])
                args += ["--mount", f"type=volume,source={name},destination={target}{read_only}"]
            else:
                raise AssertionError(f"{self.name}: volume {volume} is not supported")
        return args

    def _files(self, volume: dict) -> Path:
        """A ConfigMap's or Secret's keys as files in a folder of their own (items select and
        rename keys, as in Kubernetes)."""
        if "configMap" in volume:
            source, data = volume["configMap"], self.render.config_map(volume["configMap"]["name"])
        else:
            source, data = volume["secret"], self.render.secret(volume["secret"]["secretName"])
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        folder = self.workdir / self.name / volume["name"]
        for item in items:
            path = folder / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])
            path.chmod(0o444)
        folder.chmod(0o755)
        return folder

    def run_args(self, container: dict, *, detach: bool, publish: Iterable[int] = ()) -> list[str]:
        """`docker run` arguments for one of the pod's containers."""
        env = self.env(container)
        command = [expand(part, env) for part in container.get("command") or []]
        args = [expand(part, env) for part in container.get("args") or []]
        run = ["run", "--name", self.container_name(container), "--hostname", self.name]
        run += ["--label", f"{RUN_LABEL}={self.run_id}", "--network", self.network]
        run += [f"--network-alias={alias}" for alias in self.aliases]
        run += [f"--publish=127.0.0.1::{port}" for port in publish]
        run += ["--detach"] if detach else []
        run += self._user(container) + self._hardening(container) + self._mounts(container)
        if container.get("workingDir"):
            run += ["--workdir", container["workingDir"]]
        for name, value in env.items():
            run += ["--env", f"{name}={value}"]
        if command:
            run += ["--entrypoint", command[0], container["image"], *command[1:], *args]
        else:
            run += [container["image"], *args]
        return run

    def prepare_volumes(self, image: str) -> None:
        """Each PersistentVolumeClaim as a Docker volume owned by the pod's fsGroup, group-writable
        with the set-gid bit (what the kubelet does for fsGroup)."""
        group = self.security.get("fsGroup")
        for volume in self.spec.get("volumes") or []:
            if "persistentVolumeClaim" not in volume:
                continue
            name = self.volume_name(volume["persistentVolumeClaim"]["claimName"])
            docker("volume", "create", "--label", f"{RUN_LABEL}={self.run_id}", name)
            if group is not None:
                docker(
                    "run", "--rm", "--user", "0", "--mount", f"type=volume,source={name},destination=/v",
                    "--entrypoint", "sh", image, "-c", f"chgrp {group} /v && chmod 2775 /v",
                )  # fmt: skip

    def start(self, *, publish: Iterable[int] = ()) -> list[str]:
        """Start every container of the pod in the background; returns their names."""
        names = []
        for container in self.spec["containers"]:
            docker(*self.run_args(container, detach=True, publish=publish))
            names.append(self.container_name(container))
        return names

    def run_to_completion(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run the pod's one container in the foreground, as a Job's pod; returns its exit and logs."""
        (container,) = self.spec["containers"]
        return docker(*self.run_args(container, detach=False), check=False, timeout=timeout)


def published_port(container: str, port: int) -> int:
    """The host port (on 127.0.0.1) Docker published for `port` of `container`."""
    output = docker("port", container, f"{port}/tcp").stdout.split()
    return int(output[0].rsplit(":", 1)[1])


class Sandbox:
    """One Docker network and everything a smoke run starts on it, removed as a whole."""

    def __init__(self, workdir: Path) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.network = f"{RUN_LABEL}-{self.run_id}"
        self.workdir = workdir
        docker("network", "create", "--label", f"{RUN_LABEL}={self.run_id}", self.network)

    def pod(self, name: str, spec: dict, render: Render, services: Iterable[str] = ()) -> Pod:
        aliases = [alias for service in services for alias in service_aliases(service, render.namespace)]
        return Pod(name, spec, render, self.workdir, self.run_id, self.network, aliases)

    def containers(self) -> list[str]:
        listed = docker("ps", "--all", "--filter", f"label={RUN_LABEL}={self.run_id}", "--format", "{{.Names}}")
        return sorted(listed.stdout.split())

    def diagnostics(self) -> Iterator[str]:
        """Each container's state and the end of its log: what a failing test prints."""
        for name in self.containers():
            state = docker("inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}}", name, check=False)
            logs = docker("logs", "--tail", "60", name, check=False)
            yield f"--- {name}: {state.stdout.strip()}\n{logs.stdout[-6000:]}{logs.stderr[-6000:]}"

    def close(self) -> None:
        names = self.containers()
        if names:
            docker("rm", "--force", "--volumes", *names, check=False)
        volumes = docker("volume", "ls", "--quiet", "--filter", f"label={RUN_LABEL}={self.run_id}", check=False)
        if volumes.stdout.split():
            docker("volume", "rm", "--force", *volumes.stdout.split(), check=False)
        docker("network", "rm", self.network, check=False)
