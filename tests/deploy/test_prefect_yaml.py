"""prefect.yaml: every deployment imports, matches its flow's signature, and stays in its environment."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retail_etl import __version__
from retail_etl.deploy.project import Project, load_entrypoint

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def project() -> Project:
    """prefect.yaml as `retail-etl register` sees it with RETAIL_ETL_SCHEDULE_TIMEZONE=America/New_York."""
    return Project.load(REPO / "prefect.yaml", env={}).with_schedule_timezone("America/New_York")


def test_no_build_or_push_and_a_working_directory_pull_step(project):
    assert project.data.get("build") is None and project.data.get("push") is None
    assert project.pull_steps() == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/retail-etl"}}
    ]


def test_anchors_instead_of_repetition():
    text = (REPO / "prefect.yaml").read_text()
    assert text.count("cron:") == 1 and text.count("entrypoint:") == 2
    assert "<<: *common_job_variables" in text


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_entrypoint_imports_and_parameters_match(project, environment):
    for spec in project.for_environment(environment):
        flow = load_entrypoint(project, spec["entrypoint"])
        signature = inspect.signature(flow.fn)
        assert set(spec.get("parameters") or {}) <= set(signature.parameters), spec["name"]
        required = {name for name, p in signature.parameters.items() if p.default is inspect.Parameter.empty}
        if spec.get("schedules"):
            assert not required - set(spec.get("parameters") or {}), f"{spec['name']} cannot run on a schedule"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_names_its_own_pool_namespace_and_storage(project, environment):
    specs = project.for_environment(environment)
    assert sorted(s["name"] for s in specs) == [f"backfill-{environment}", f"daily-sales-etl-{environment}"]
    for spec in specs:
        variables = spec["work_pool"]["job_variables"]
        assert spec["work_pool"]["name"] == f"retail-etl-{environment}"
        assert variables["namespace"] == f"retail-etl-{environment}"
        assert variables["env"]["RETAIL_ETL_WAREHOUSE"] == f"s3://warehouse-{environment}"
        assert f".retail-etl-{environment}.svc" in variables["env"]["RETAIL_ETL_DASK_ADDRESS"]
        assert variables["env"]["RETAIL_ETL_S3_ENDPOINT_URL"].startswith("http")
        assert isinstance(variables["finished_job_ttl"], int) and variables["finished_job_ttl"] > 0
        assert variables["image"] == f"retail-etl:{__version__}"  # plain prefect deploy's; registration sets its own
        others = [other for other in ENVIRONMENTS if other != environment]
        flat = yaml.safe_dump(spec)
        assert not any(f"-{other}" in flat for other in others), f"{spec['name']} mentions another environment"


def test_schedules_daily_at_six_in_the_configured_zone_paused_in_dev(project):
    for environment, active in (("dev", False), ("staging", True), ("prod", True)):
        daily = next(s for s in project.for_environment(environment) if s["name"].startswith("daily"))
        assert daily["schedules"] == [
            {"cron": "0 6 * * *", "timezone": "America/New_York", "slug": "daily-0600", "active": active}
        ]
        backfill = next(s for s in project.for_environment(environment) if s["name"].startswith("backfill"))
        assert backfill["schedules"] == []
        assert {"start", "end"} <= set(
            inspect.signature(load_entrypoint(project, backfill["entrypoint"]).fn).parameters
        )


def test_nothing_depends_on_the_deploying_shell():
    """No ``{{ $VAR }}``: plain `prefect deploy` from a fresh shell writes what the file says (an unset
    variable used to become timezone '', and every scheduled run failed)."""
    assert "{{" not in (REPO / "prefect.yaml").read_text()


@pytest.mark.parametrize("zone", [None, "Europe/Berlin"])
def test_schedules_and_flow_runs_share_one_time_zone(zone):
    """UTC as written; `retail-etl register`'s override moves the schedules and the runs' setting together."""
    project = Project.load(REPO / "prefect.yaml", env={}).with_schedule_timezone(zone)
    for spec in project.deployments:
        assert spec["work_pool"]["job_variables"]["env"]["RETAIL_ETL_SCHEDULE_TIMEZONE"] == (zone or "UTC")
        assert all(schedule["timezone"] == (zone or "UTC") for schedule in spec.get("schedules") or [])
    assert Project.load(REPO / "prefect.yaml", env={}).for_environment("prod")[0]["schedules"][0]["timezone"] == "UTC"


def test_default_run_date_is_the_day_before_the_scheduled_time():
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from retail_etl.orchestration.flows import default_run_date

    six_am_berlin = datetime(2024, 1, 16, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert default_run_date(six_am_berlin, "Europe/Berlin") == date(2024, 1, 15)
    # 03:30 UTC on the 10th is still the evening of the 9th in New York: the run processes the 8th.
    assert default_run_date(datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("UTC")), "UTC") == date(2024, 3, 9)
    assert default_run_date(datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("UTC")), "America/New_York") == date(
        2024, 3, 8
    )


def test_versions_come_from_the_package():
    """The chart's appVersion (the image tag it defaults to) is the package's version."""
    import tomllib

    from retail_etl import __version__

    chart = yaml.safe_load((REPO / "charts" / "retail-etl" / "Chart.yaml").read_text())
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == declared == chart["appVersion"]


def plain_prefect(args: list[str], api_url: str) -> subprocess.CompletedProcess:
    """The `prefect` command line from a fresh shell: no RETAIL_ETL_* variable, the repository as cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_ETL_")}
    env.update(PREFECT_API_URL=api_url, COLUMNS="200", PYTHONPATH=str(REPO / "flows"))
    prefect = str(Path(sys.executable).with_name("prefect"))
    return subprocess.run([prefect, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_plain_prefect_deploy_all_schedules_valid_runs_in_utc(prefect_api):
    """The README's plain path: create the pools, then `prefect deploy --all`. Every environment is
    deployed, the schedules and the runs' setting are UTC, and Prefect's scheduler (the server's
    schedule endpoint) creates runs at 06:00 UTC whose run date the flow can compute."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from retail_etl.orchestration.flows import default_run_date

    for environment in ENVIRONMENTS:  # exactly the README's commands; a pool may exist from another test
        pool = f"retail-etl-{environment}"
        created = plain_prefect(["work-pool", "create", pool, "--type", "kubernetes"], prefect_api)
        assert created.returncode == 0 or "already exists" in created.stdout + created.stderr, created.stdout
    deployed = plain_prefect(["--no-prompt", "deploy", "--all"], prefect_api)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    with get_client(sync_client=True) as client:
        for environment in ENVIRONMENTS:
            daily = client.read_deployment_by_name(f"daily-sales-etl/daily-sales-etl-{environment}")
            assert [s.schedule.timezone for s in daily.schedules] == ["UTC"]
            zone = daily.job_variables["env"]["RETAIL_ETL_SCHEDULE_TIMEZONE"]
            assert zone == "UTC"
            assert daily.job_variables["image"] == f"retail-etl:{__version__}"  # the image k8s/up.sh builds
            if not daily.schedules[0].active:
                continue  # dev's schedule is paused: the server schedules nothing for it
            response = httpx.post(f"{prefect_api}/deployments/{daily.id}/schedule", json={"min_runs": 2}, timeout=60)
            assert response.status_code < 300, response.text
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[daily.id])), limit=10
            )
            starts = sorted(run.expected_start_time for run in runs if run.state and run.state.is_scheduled())
            assert len(starts) >= 2
            for start in starts:
                utc = start.astimezone(ZoneInfo("UTC"))
                assert (utc.hour, utc.minute) == (6, 0)
                assert default_run_date(start, zone) == (start - timedelta(days=1)).date()
