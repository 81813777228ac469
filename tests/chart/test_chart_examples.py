"""The installation modes' example values (k8s/examples/*.yaml): each renders with the exact command
its header gives, passes `helm lint --strict` and the schema, and the chart README documents it.
Kubernetes validation and checkov cover them with every other render (test_chart_lint_schema.py,
test_chart_checkov.py)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from chartkit import CHART, deep_merge, example_modes, helm_lint

MODES = example_modes()


@pytest.mark.parametrize("mode", list(MODES))
def test_example_passes_lint_and_schema(mode):
    path, _, namespace = MODES[mode]
    assert "0 chart(s) failed" in helm_lint([path], namespace=namespace)
    schema = json.loads((CHART / "values.schema.json").read_text())
    merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), yaml.safe_load(path.read_text()) or {})
    jsonschema.Draft7Validator(schema).validate(merged)


@pytest.mark.parametrize("mode", list(MODES))
def test_chart_readme_documents_example(mode):
    path, release, namespace = MODES[mode]
    readme = (CHART / "README.md").read_text()
    assert f"k8s/examples/{path.name}" in readme, f"charts/retail-etl/README.md does not mention {path.name}"
