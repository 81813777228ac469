"""`retail-etl register` and `retail-etl make-buckets` exactly as the chart's Jobs run them,
against a real Prefect API and a real S3 API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "chart"))

import chartkit  # noqa: E402  (renders the chart with the real helm)


def chart_registration_job(environment: str) -> tuple[dict, list[str]]:
    """The base job template and the registration command the chart renders for `environment`."""
    objects = chartkit.render_environment(environment)
    job = chartkit.one(objects, "Job", "retail-etl-register")
    return chartkit.base_job_template(objects), job["spec"]["template"]["spec"]["containers"][0]["command"]


def run_cli(args: list[str], api_url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url, "COLUMNS": "160", "RETAIL_ETL_WAREHOUSE": "./warehouse"}
    return subprocess.run(
        [sys.executable, "-m", "retail_etl", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_registration_job_command_against_a_real_api(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    template, command = chart_registration_job("staging")
    assert command[:2] == ["retail-etl", "register"]
    (tmp_path / "template.json").write_text(json.dumps(template))
    args = command[1:]
    args[args.index("--base-job-template") + 1] = str(tmp_path / "template.json")
    args[args.index("--prefect-file") + 1] = str(REPO / "prefect.yaml")

    # The API is shared by the session: start from no staging pool and deployments (what a new cluster has).
    with get_client(sync_client=True) as client:
        for name in ("daily-sales-etl/daily-sales-etl-staging", "backfill/backfill-staging"):
            try:
                client.delete_deployment(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                pass
        try:
            client.delete_work_pool("retail-etl-staging")
        except ObjectNotFound:
            pass

    first = run_cli(args, prefect_api, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created" in first.stdout
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("retail-etl-staging")
        daily = client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging")
    assert pool.type == "kubernetes" and pool.base_job_template == template
    image = args[args.index("--image") + 1]
    assert daily.job_variables["image"] == image
    assert daily.job_variables["namespace"] == "retail-etl-staging"
    assert daily.job_variables["service_account_name"] == "retail-etl-flow-run"
    assert daily.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/retail-etl"}}]

    # An upgrade with a changed template pushes it into the existing pool; deployments are updated in place.
    template["variables"]["properties"]["finished_job_ttl"]["default"] = 60
    (tmp_path / "template.json").write_text(json.dumps(template))
    second = run_cli(args, prefect_api, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "updated" in second.stdout
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("retail-etl-staging").base_job_template == template
        assert client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging").id == daily.id


def test_registration_refuses_an_unknown_environment(prefect_api, tmp_path):
    result = run_cli(
        ["register", "--environment", "qa", "--prefect-file", str(REPO / "prefect.yaml"), "--wait-timeout", "5"],
        prefect_api,
        tmp_path,
    )
    assert result.returncode == 22  # UnknownEnvironment
    assert (
        "unknown environment qa" in result.stderr and "known ones are dev, prod, staging" in result.stderr
    )  # prefect.yaml's
    assert len(result.stderr.strip().splitlines()) == 1


def test_make_buckets_is_idempotent(s3_endpoint, tmp_path):
    env = {**os.environ, "COLUMNS": "160"}
    for expected in ("created", "exists"):
        result = subprocess.run(
            [sys.executable, "-m", "retail_etl", "make-buckets", "landing-mb", "warehouse-mb"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(expected) == 2
    names = {b["Name"] for b in boto3.client("s3", endpoint_url=s3_endpoint).list_buckets()["Buckets"]}
    assert {"landing-mb", "warehouse-mb"} <= names
