"""Secrets for GitOps: every credential can come from an existing Secret, secrets.requireExisting
refuses every Secret the chart would create (naming the value to set), and the release notes name
the generated Secrets that a renderer without cluster access would generate anew on every render.

The notes come from `helm install --dry-run=client` (what `helm install` prints; lookup finds
nothing there, as on a first install or under `helm template`/Argo CD)."""

from __future__ import annotations

import base64
import json
import re
import tempfile

import pytest
import yaml
from chartkit import (
    CHART,
    ENVIRONMENTS,
    KITCHEN_SINK,
    HelmError,
    _value_args,
    container_env,
    deep_merge,
    example_modes,
    find,
    one,
    pod_templates,
    render_chart,
    run_helm,
)

POSTGRESQL = {"prefectServer": {"database": {"type": "postgresql"}}, "postgresql": {"enabled": True}}
REQUIRE = {"secrets": {"requireExisting": True}}
NOTE = re.compile(r"^  Secret (\S+) \(keys ([^)]+)\); to bring your own, set (\S+)$", re.M)
KEEP = "helm.sh/resource-policy"


def install_dry_run(values: dict | None = None, values_files=(), namespace="retail-etl-dev", release="retail-etl"):
    """(notes, manifest objects) of `helm install --dry-run=client`, rendered afresh every call."""
    with tempfile.TemporaryDirectory() as workdir:
        result = run_helm(
            "install",
            release,
            str(CHART),
            "--dry-run=client",
            "--namespace",
            namespace,
            "--output",
            "json",
            *_value_args(values, values_files, workdir),
        )
    release_info = json.loads(result.stdout)
    objects = [o for o in yaml.safe_load_all(release_info["manifest"]) if o]
    return release_info["info"]["notes"], objects


def secrets(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in find(objects, "Secret")}


def refusal(values: dict) -> str:
    with pytest.raises(HelmError) as error:
        render_chart(values)
    return error.value.stderr


def secret_refs(objects: list[dict]) -> set[tuple[str, str | None]]:
    """(Secret name, key or None for envFrom) of every pod template, flow-run Job included."""
    refs = set()
    for _, _, spec in pod_templates(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            # The flow-run Job's env is a job-variable placeholder; its Secrets come by envFrom.
            for entry in container_env(container).values() if isinstance(container.get("env"), list) else []:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    refs.add((source["secretRef"]["name"], None))
    return refs


# -- each credential: generated (or from values) without existingSecret, referenced with it -------

CREDENTIALS = {
    # name: (values that make the chart create it, Secret, keys, existingSecret path, expected refs)
    "minio": (
        {},
        "retail-etl-minio",
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        "minio.existingSecret",
        {("{}", "AWS_ACCESS_KEY_ID"), ("{}", "AWS_SECRET_ACCESS_KEY"), ("{}", None)},
    ),
    "postgresql": (
        POSTGRESQL,
        "retail-etl-postgresql",
        ["password"],
        "postgresql.existingSecret",
        {("{}", "password")},
    ),
    "basic-auth": (
        {"basicAuth": {"enabled": True}},
        "retail-etl-auth",
        ["auth-string"],
        "basicAuth.existingSecret",
        {("{}", "auth-string")},
    ),
    "s3-from-values": (
        {"s3": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "example-secret"}},
        "retail-etl-s3",
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        "s3.existingSecret",
        {("{}", None)},
    ),
}


def with_value(values: dict, path: str, value) -> dict:
    *parents, leaf = path.split(".")
    override: dict = {leaf: value}
    for key in reversed(parents):
        override = {key: override}
    return deep_merge(values, override)


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_credential_is_created_without_existing_secret(credential):
    values, name, keys, _, refs = CREDENTIALS[credential]
    objects = render_chart(values)
    secret = one(objects, "Secret", name)
    assert sorted(secret["data"]) == sorted(keys)
    assert all(base64.b64decode(v) for v in secret["data"].values())
    assert {(n.format(name), k) for n, k in refs} <= secret_refs(objects)


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_credential_comes_from_existing_secret(credential):
    values, name, _, path, refs = CREDENTIALS[credential]
    objects = render_chart(with_value(values, path, "my-credentials"))
    assert name not in secrets(objects)
    used = secret_refs(objects)
    assert {("my-credentials", k) for _, k in refs} <= used
    assert not {n for n, _ in used} & {name}, f"{name} is still referenced"


def test_secrets_that_unlock_kept_data_are_kept_on_uninstall():
    """MinIO's and PostgreSQL's data volumes outlive `helm uninstall` (volumeClaimTemplates), so
    the generated Secrets that unlock them do too."""
    objects = render_chart(POSTGRESQL)
    for name in ("retail-etl-minio", "retail-etl-postgresql"):
        assert one(objects, "Secret", name)["metadata"]["annotations"][KEEP] == "keep"


def test_basic_auth_from_values_is_the_user_and_password():
    objects = render_chart({"basicAuth": {"enabled": True, "username": "ops", "password": "s3cret"}})
    assert base64.b64decode(one(objects, "Secret", "retail-etl-auth")["data"]["auth-string"]) == b"ops:s3cret"


# -- secrets.requireExisting ------------------------------------------------------------------


def message(path: str, secret: str, keys: str, source: str = "with generated values") -> str:
    return (
        f"{path} is required when secrets.requireExisting=true: the chart would create the Secret {secret} "
        f"{source}; create it yourself (keys: {keys}) and set {path} to its name"
    )


MINIO_EXISTING = {"minio": {"existingSecret": "minio-credentials"}}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, message("minio.existingSecret", "retail-etl-minio", "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY")),
        (
            deep_merge(MINIO_EXISTING, POSTGRESQL),
            message("postgresql.existingSecret", "retail-etl-postgresql", "password"),
        ),
        (
            {**MINIO_EXISTING, "basicAuth": {"enabled": True}},
            message("basicAuth.existingSecret", "retail-etl-auth", "auth-string"),
        ),
        (
            {**MINIO_EXISTING, "basicAuth": {"enabled": True, "password": "s3cret"}},
            message(
                "basicAuth.existingSecret",
                "retail-etl-auth",
                "auth-string",
                "from basicAuth.username and basicAuth.password",
            ),
        ),
        (
            {**MINIO_EXISTING, "s3": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "example-secret"}},
            message(
                "s3.existingSecret",
                "retail-etl-s3",
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
                "from s3.accessKeyId and s3.secretAccessKey",
            ),
        ),
    ],
    ids=["minio", "postgresql", "basic-auth-generated", "basic-auth-from-values", "s3-from-values"],
)
def test_require_existing_refuses_a_chart_created_secret(values, expected):
    assert expected in refusal(deep_merge(values, REQUIRE))


def test_require_existing_is_off_by_default():
    assert "retail-etl-minio" in secrets(render_chart({}))


def test_gitops_example_refuses_each_missing_existing_secret():
    """The GitOps example sets every existingSecret; without any one of them it does not render."""
    path, release, namespace = example_modes()["gitops-existing-secrets"]
    example = yaml.safe_load(path.read_text())
    assert example["secrets"]["requireExisting"] is True
    assert not find(render_chart(example, namespace=namespace, release=release), "Secret")
    for value in ("minio.existingSecret", "postgresql.existingSecret", "basicAuth.existingSecret"):
        with pytest.raises(HelmError) as error:
            render_chart(with_value(example, value, ""), namespace=namespace, release=release)
        assert f"{value} is required when secrets.requireExisting=true" in error.value.stderr


def renders() -> dict[str, tuple[dict, list, str, str]]:
    """Every render of the chart tests: name -> (values, values files, namespace, release)."""
    found = {
        name: ({}, [path] if path else [], namespace, "retail-etl") for name, (path, namespace) in ENVIRONMENTS.items()
    }
    found["kitchen-sink"] = (KITCHEN_SINK, [], "retail-etl-dev", "retail-etl")
    for mode, (path, release, namespace) in example_modes().items():
        found[f"example:{mode}"] = ({}, [path], namespace, release)
    return found


RENDERS = renders()


@pytest.mark.parametrize("render", list(RENDERS))
def test_require_existing_leaves_no_chart_created_secret(render):
    """With requireExisting, every render either fails naming an existingSecret or creates no
    Secret: following the messages until it renders must end with no Secret of the chart's own."""
    values, files, namespace, release = RENDERS[render]
    values = deep_merge(values, REQUIRE)
    named = []
    for _ in range(8):
        try:
            objects = render_chart(values, files, namespace=namespace, release=release)
            break
        except HelmError as error:
            match = re.search(r"(\S+\.existingSecret) is required when secrets\.requireExisting=true", error.stderr)
            assert match, error.stderr
            assert match.group(1) not in named, f"{match.group(1)} refused again after being set"
            named.append(match.group(1))
            values = with_value(values, match.group(1), f"existing-{len(named)}")
    else:
        pytest.fail(f"still refused after setting {named}")
    assert not find(objects, "Secret"), [s["metadata"]["name"] for s in find(objects, "Secret")]


# -- release notes ----------------------------------------------------------------------------


@pytest.mark.parametrize("render", list(RENDERS))
def test_notes_name_exactly_the_secrets_that_change_between_renders(render):
    """Without lookup every render generates new credentials: the Secrets whose data differ
    between two renders are exactly the ones the notes name, each with the value to set."""
    values, files, namespace, release = RENDERS[render]
    notes, first = install_dry_run(values, files, namespace, release)
    _, second = install_dry_run(values, files, namespace, release)
    before, after = secrets(first), secrets(second)
    assert before.keys() == after.keys()
    changing = {name for name in before if before[name]["data"] != after[name]["data"]}
    named = {m.group(1): (m.group(2), m.group(3)) for m in NOTE.finditer(notes)}
    assert set(named) == changing, notes
    for name, (keys, value) in named.items():
        assert keys.split(", ") == sorted(before[name]["data"])
        assert value.endswith(".existingSecret")
        # Setting the named value replaces the Secret.
        fixed = install_dry_run(with_value(values, value, "my-credentials"), files, namespace, release)[1]
        assert name not in secrets(fixed)
    if changing:
        assert "secrets.requireExisting=true" in notes
        assert "GitOps (Argo CD, Flux, helm template)" in notes
    else:
        assert "Generated credentials" not in notes


def test_notes_name_every_generated_secret():
    notes, _ = install_dry_run(deep_merge(POSTGRESQL, {"basicAuth": {"enabled": True}}))
    assert {m.group(1): m.group(3) for m in NOTE.finditer(notes)} == {
        "retail-etl-auth": "basicAuth.existingSecret",
        "retail-etl-minio": "minio.existingSecret",
        "retail-etl-postgresql": "postgresql.existingSecret",
    }
    assert "Generated credentials: no existing Secret was found" in notes
