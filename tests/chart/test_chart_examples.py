"""The installation modes' example values (k8s/examples/*.yaml): each renders with the exact command
its header gives, passes `helm lint --strict` and the schema, and the chart README documents it.
Kubernetes validation and checkov cover them with every other render (test_chart_lint_schema.py,
test_chart_checkov.py)."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chartkit import CHART, deep_merge, example_modes, find, helm_lint, render_example
from flowrun import flow_run_jobs, job_container, registration_arguments

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


def _env_of(container: dict) -> dict[str, str | None]:
    return {
        e["name"]: e.get("value") for e in container.get("env", []) if e["name"].startswith(("RETAIL_ETL_", "AWS_"))
    }


@pytest.mark.parametrize("mode", list(MODES))
def test_flow_run_job_of_every_example(mode):
    """The Job the worker would create for each deployment the example registers: validated, in the
    namespace the registration gives it, run as a ServiceAccount the release creates there, with the
    same store settings and credential source as the Dask workers (or the registration Job)."""
    objects = render_example(mode)
    if not [j for j in find(objects, "Job") if j["metadata"]["name"].endswith("-register")]:
        pytest.skip(f"{mode} registers no deployments (no registration Job)")
    path = MODES[mode][0]
    environment = (yaml.safe_load(path.read_text()) or {}).get("environment", "dev")
    _, job_variables = registration_arguments(objects)
    (register,) = [j for j in find(objects, "Job") if j["metadata"]["name"].endswith("-register")]
    reference = register["spec"]["template"]["spec"]["containers"][0]
    workers = [d for d in find(objects, "Deployment") if d["metadata"]["name"].endswith("-dask-worker")]
    if workers:
        reference = workers[0]["spec"]["template"]["spec"]["containers"][0]
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in find(objects, "ServiceAccount")}
    for job in flow_run_jobs(objects, environment):
        kubernetes_validate.validate(job, "1.35.0", strict=True)
        namespace = job["metadata"]["namespace"]
        assert namespace == job_variables["namespace"]
        pod = job["spec"]["template"]["spec"]
        assert (namespace, pod["serviceAccountName"]) in accounts, f"{mode}: no ServiceAccount for the flow run"
        container = job_container(job)
        env = _env_of(container)
        expected = _env_of(reference)
        for name in (
            "RETAIL_ETL_S3_ENDPOINT_URL",
            "RETAIL_ETL_S3_REGION",
            "RETAIL_ETL_WAREHOUSE",
            "RETAIL_ETL_LANDING",
        ):
            assert env.get(name) == expected.get(name), f"{mode}: {name} {env.get(name)!r} != {expected.get(name)!r}"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env), f"{mode}: literal credentials"
        assert container.get("envFrom") == reference.get("envFrom"), f"{mode}: another credential source"
