"""`retail-etl register` with several job namespaces, exactly as the chart's registration Job runs
it (multi-namespace example), against a real Prefect API: the deployments' namespaces, and the
refusal of a deployment naming a namespace the worker has no Role in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "chart"))
sys.path.insert(0, str(REPO / "tests" / "deploy"))

import chartkit  # noqa: E402
from test_register import run_cli  # noqa: E402


def rendered_command(tmp_path: Path) -> list[str]:
    """The registration Job's arguments, with only the in-container file paths replaced."""
    objects = chartkit.render_example("multi-namespace")
    job = chartkit.one(objects, "Job", "retail-etl-register")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["retail-etl", "register"]
    (tmp_path / "template.json").write_text(json.dumps(chartkit.base_job_template(objects)))
    args = command[1:]
    args[args.index("--base-job-template") + 1] = str(tmp_path / "template.json")
    args[args.index("--prefect-file") + 1] = str(REPO / "prefect.yaml")
    return args


def test_deployments_run_in_the_chosen_job_namespace(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client

    args = rendered_command(tmp_path)
    assert args[args.index("--allowed-namespaces") + 1] == "retail-etl-dev,team-a,team-b"
    result = run_cli(args, prefect_api, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        for name in ("daily-sales-etl/daily-sales-etl-dev", "retail-etl-backfill/backfill-dev"):
            assert client.read_deployment_by_name(name).job_variables["namespace"] == "team-a"
        pool = client.read_work_pool("retail-etl-dev")
    assert pool.base_job_template["variables"]["properties"]["namespace"]["default"] == "team-a"


def test_a_deployment_outside_the_job_namespaces_is_refused(prefect_api, tmp_path):
    """prefect.yaml names team-c for dev's deployments and the chart does not force a namespace:
    nothing is registered, and the one-line error names the deployment, team-c and the value."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in project["deployments"]:
        variables = deployment.get("work_pool", {}).get("job_variables")
        if variables is not None and "env:dev" in deployment.get("tags", []):
            variables["namespace"] = "team-c"
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(project))
    args = rendered_command(tmp_path)
    args[args.index("--prefect-file") + 1] = str(tmp_path / "prefect.yaml")
    overrides = json.loads(args[args.index("--job-variables") + 1])
    del overrides["namespace"]
    args[args.index("--job-variables") + 1] = json.dumps(overrides)
    args[args.index("--work-pool") + 1] = "retail-etl-refused"

    result = run_cli(args, prefect_api, tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr  # DeploymentError
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert "daily-sales-etl-dev" in error and "team-c" in error and "worker.jobNamespaces" in error
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool("retail-etl-refused")
            raise AssertionError("the pool was created although registration was refused")
        except ObjectNotFound:
            pass
