"""prefect.yaml: every deployment imports, matches its flow's signature, and stays in its environment."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from retail_etl.deploy.project import Project, load_entrypoint

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load(REPO / "prefect.yaml", env={"RETAIL_ETL_SCHEDULE_TIMEZONE": "America/New_York"})


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
        assert "image" not in variables  # registration sets it (one source for the version)
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


def test_timezone_defaults_to_the_setting(monkeypatch):
    monkeypatch.delenv("RETAIL_ETL_SCHEDULE_TIMEZONE", raising=False)
    daily = Project.load(REPO / "prefect.yaml").for_environment("prod")[0]
    assert daily["schedules"][0]["timezone"] == "UTC"


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
