"""helm lint, Kubernetes schema validation of every rendered object, values.schema.json, docs."""

from __future__ import annotations

import functools
import json
import re

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chartkit import (
    CHART,
    ENVIRONMENTS,
    KITCHEN_SINK,
    KUBERNETES_VERSIONS,
    HelmError,
    deep_merge,
    example_modes,
    helm_lint,
    render_chart,
    render_chart_text,
    render_environment,
    render_example,
)

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def all_renders() -> dict[str, list[dict]]:
    """Every environment, plus variants that switch on what the defaults leave off."""
    renders = {name: render_environment(name) for name in ENVIRONMENTS}
    renders["kitchen-sink"] = render_chart(KITCHEN_SINK)
    renders["external-db-and-s3"] = render_chart(
        {
            "prefectServer": {"database": {"type": "postgresql", "external": {"existingSecret": "prefect-db"}}},
            "minio": {"enabled": False},
            "s3": {
                "endpointUrl": "https://s3.example.com",
                "accessKeyId": "AKIDEXAMPLE",
                "secretAccessKey": "example-secret",
            },
            "dask": {"enabled": False},
        }
    )
    renders["env-with-auth"] = render_environment(
        "dev", {"basicAuth": {"enabled": True, "existingSecret": "retail-etl-auth"}}
    )
    for mode in example_modes():
        renders[f"example:{mode}"] = render_example(mode)
    return renders


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_helm_lint_strict(environment):
    values_file, namespace = ENVIRONMENTS[environment]
    output = helm_lint([values_file] if values_file else [], namespace=namespace)
    assert "0 chart(s) failed" in output


@pytest.fixture(scope="module")
def cached_schemas():
    """kubernetes-validate reads and parses its schema files (1.4 MB of definitions) again for every
    object it validates; the same files, parsed once, serve every object of every render."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate.utils, "schema_contents", functools.cache(kubernetes_validate.utils.schema_contents)
        )
        yield


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(version, cached_schemas):
    supported = kubernetes_validate.utils.all_versions() if hasattr(kubernetes_validate.utils, "all_versions") else None
    if supported is not None:
        assert any(v.startswith(version.rsplit(".", 1)[0]) for v in supported), f"kubernetes-validate lacks {version}"
    checked = 0
    for render, objects in all_renders().items():
        assert objects, render
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{render}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}")
            checked += 1
    assert checked > 50


def test_values_yaml_matches_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


@pytest.mark.parametrize("environment", [name for name, (path, _) in ENVIRONMENTS.items() if path])
def test_environment_values_match_schema(environment):
    values_file, _ = ENVIRONMENTS[environment]
    merged = deep_merge(VALUES, yaml.safe_load(values_file.read_text()))
    jsonschema.Draft7Validator(SCHEMA).validate(merged)


def _objects_without_additional_properties(schema: dict, path: str = "$"):
    """Every object schema that lists properties must forbid others."""
    if schema.get("type") == "object" and "properties" in schema:
        yield path, schema.get("additionalProperties")
    for key, sub in (schema.get("properties") or {}).items():
        yield from _objects_without_additional_properties(sub, f"{path}.{key}")
    for key, sub in (schema.get("definitions") or {}).items():
        yield from _objects_without_additional_properties(sub, f"{path}#{key}")
    if isinstance(schema.get("items"), dict):
        yield from _objects_without_additional_properties(schema["items"], f"{path}[]")


def test_schema_forbids_unknown_keys_everywhere():
    assert SCHEMA["additionalProperties"] is False
    loose = [path for path, additional in _objects_without_additional_properties(SCHEMA) if additional is not False]
    assert not loose, f"object schemas accepting unknown keys: {loose}"


@pytest.mark.parametrize(
    "setting",
    [
        "foo=bar",
        "global.foo=bar",
        "worker.bogus=1",
        "dask.worker.bogus=1",
        "minio.image.bogus=x",
        "prefectServer.ingress.tls.bogus=true",
        "networkPolicy.bogus=true",
        "worker.resources.requests.gpu=1",
    ],
)
def test_unknown_keys_fail_helm_template(setting):
    with pytest.raises(HelmError) as failure:
        render_chart_text(extra_args=("--set", setting))
    assert "additional properties" in failure.value.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"minio": {"image": {"tag": "latest"}}}, "/minio/image/tag"),
        ({"environment": "Not_A_Label"}, "/environment"),
        ({"prefectServer": {"database": {"type": "mysql"}}}, "/prefectServer/database/type"),
        ({"worker": {"resources": {"limits": None}}}, "limits"),
        ({"prefectServer": {"replicas": 0}}, "/prefectServer/replicas"),
    ],
)
def test_schema_rejects_bad_values(values, message):
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    assert message in failure.value.stderr


def _key_lines(text: str):
    """(line number, indent, key, previous non-blank line) of every mapping key of values.yaml."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
        if not match:
            continue
        previous = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        yield number + 1, len(match.group(1)), match.group(2), previous


def test_every_key_in_values_yaml_is_commented():
    text = (CHART / "values.yaml").read_text()
    uncommented = []
    resources_indent = None
    for number, indent, key, previous in _key_lines(text):
        # The keys inside a `resources:` block are Kubernetes' own (requests/limits of cpu/memory),
        # documented by the comment on `resources:`.
        if resources_indent is not None and indent > resources_indent:
            continue
        resources_indent = indent if key == "resources" else None
        if not previous.strip().startswith("#"):
            uncommented.append(f"line {number}: {key}")
    assert not uncommented, f"values.yaml keys without a comment above: {uncommented}"


def _leaf_paths(values: dict, prefix: str = ""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "resources":
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def test_chart_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", readme, flags=re.M)}
    missing = [path for path in _leaf_paths(VALUES) if path not in table]
    assert not missing, f"values missing from the README's values table: {missing}"
    unknown = [path for path in table if path not in set(_leaf_paths(VALUES))]
    assert not unknown, f"README documents values that do not exist: {unknown}"
