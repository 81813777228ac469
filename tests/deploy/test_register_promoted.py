"""`retail-etl register` against a real Prefect API: each deployment is labelled with the build it
registers, and a build given by promotion through the API survives a re-registration (as the Helm
hook or a laptop runs it) unless --reset-promotions."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "deploy"))

from test_register_errors import PREFECT_FILE, one_error, retail_etl  # noqa: E402

DAILY = "daily-sales-etl/daily-sales-etl-staging"


def register(tmp_path, api, *extra: str) -> str:
    args = ["register", "--environment", "staging", "--prefect-file", PREFECT_FILE, "--pool-type", "process"]
    result = retail_etl([*args, "--work-pool", "h-promoted-staging", *extra], tmp_path, api)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def read(name: str = DAILY):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


def promote_through_the_api(image: str, build: str) -> None:
    """What `retail-etl promote` writes to a target deployment: image, build, tag and note."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    for name in (DAILY, "retail-etl-backfill/backfill-staging"):
        target = read(name)
        with get_client(sync_client=True) as client:
            client.update_deployment(
                target.id,
                DeploymentUpdate(
                    job_variables={**target.job_variables, "image": image},
                    version=build,
                    tags=[*target.tags, "promoted-from:dev"],
                    description=f"{target.description} Promoted from dev (build {build}).",
                ),
            )


def test_build_id_becomes_the_version(prefect_api, tmp_path):
    register(tmp_path, prefect_api, "--image", "retail-etl:a", "--build", "sha-aaaa")
    daily = read()
    assert daily.version == "sha-aaaa" and daily.job_variables["image"] == "retail-etl:a"
    assert "promoted-from:dev" not in daily.tags


def test_registration_keeps_a_promoted_build(prefect_api, tmp_path):
    register(tmp_path, prefect_api, "--image", "retail-etl:a", "--build", "sha-aaaa")
    promote_through_the_api("retail-etl:b", "sha-bbbb")

    # The hook (or a laptop) registers staging's own image again: the promoted build stays, and says so.
    output = register(tmp_path, prefect_api, "--image", "retail-etl:a", "--build", "sha-aaaa")
    assert "kept promoted build of daily-sales-etl-staging (promoted-from:dev): image retail-etl:b" in output
    daily = read()
    assert daily.job_variables["image"] == "retail-etl:b" and daily.version == "sha-bbbb"
    assert "promoted-from:dev" in daily.tags and "Promoted from dev (build sha-bbbb)" in daily.description
    assert daily.job_variables["namespace"] == "retail-etl-staging"  # the environment's own settings still apply

    # Helm path: the release image is the promoted build: registered as it is, the promotion's record kept.
    output = register(tmp_path, prefect_api, "--image", "retail-etl:b", "--build", "sha-bbbb")
    assert "kept promoted build" not in output
    daily = read()
    assert daily.job_variables["image"] == "retail-etl:b" and daily.version == "sha-bbbb"
    assert "promoted-from:dev" in daily.tags

    # Asked for: the registered build replaces the promoted one, and the promotion's record goes.
    register(tmp_path, prefect_api, "--image", "retail-etl:a", "--build", "sha-aaaa", "--reset-promotions")
    daily = read()
    assert daily.job_variables["image"] == "retail-etl:a" and daily.version == "sha-aaaa"
    assert not any(tag.startswith("promoted-") for tag in daily.tags)
    assert "Promoted from" not in daily.description


def test_schedule_time_zone_from_the_setting(prefect_api, tmp_path):
    """RETAIL_ETL_SCHEDULE_TIMEZONE moves the schedule and the runs' setting together; an invalid
    zone is refused before anything is written."""
    args = ["register", "--environment", "staging", "--prefect-file", PREFECT_FILE, "--pool-type", "process"]
    args += ["--work-pool", "h-promoted-staging"]
    result = retail_etl(args, tmp_path, prefect_api, RETAIL_ETL_SCHEDULE_TIMEZONE="Europe/Berlin")
    assert result.returncode == 0, result.stdout + result.stderr
    daily = read()
    assert [s.schedule.timezone for s in daily.schedules] == ["Europe/Berlin"]
    assert daily.job_variables["env"]["RETAIL_ETL_SCHEDULE_TIMEZONE"] == "Europe/Berlin"

    error = one_error(retail_etl(args, tmp_path, prefect_api, RETAIL_ETL_SCHEDULE_TIMEZONE="Mars/Olympus"), 3)
    assert "RETAIL_ETL_SCHEDULE_TIMEZONE='Mars/Olympus' is not an IANA time zone" in error
    assert read().job_variables["env"]["RETAIL_ETL_SCHEDULE_TIMEZONE"] == "Europe/Berlin"
