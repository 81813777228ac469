"""What an operator sees in the Prefect UI: run names, tags and artifact keys that say which
environment and which day.

Every environment shares one Prefect server, so a name or key without the environment is
ambiguous: run names carry environment and date (`daily-sales-etl-staging 2024-01-15`),
artifact keys carry the environment (one stable key per environment, whose history is the
days), and the resolved run date of a scheduled run (parameters `{}`) is a tag.

>>> artifact_key("retail-etl", "region-figures", "Staging_EU")
'retail-etl-region-figures-staging-eu'
>>> daily_name("staging", date(2024, 1, 15))
'daily-sales-etl-staging 2024-01-15'
>>> run_tags(["retail-etl", "env:dev"], "dev", "2024-01-15")
['env:dev', 'retail-etl', 'run-date:2024-01-15']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from ..config import Settings, load_settings
from ..core.dates import default_run_date
from ..errors import ConfigurationError

DAILY_FLOW = "daily-sales-etl"
BACKFILL_FLOW = "backfill"


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from `parts`: lowercase letters, digits and single dashes only."""
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ValueError(f"no artifact key can be made of {parts!r}")
    return key


def daily_name(environment: str, run_date: date | str) -> str:
    """The daily flow run's name: its deployment's name (flow and environment) and the day."""
    return f"{DAILY_FLOW}-{environment} {_iso(run_date)}"


def backfill_name(environment: str, start: date | str, end: date | str) -> str:
    """The backfill run's name: its deployment's name and the range."""
    return f"{BACKFILL_FLOW}-{environment} {_iso(start)}..{_iso(end)}"


def run_tags(existing: Iterable[str], environment: str, run_date: str) -> list[str]:
    """The run's tags plus its environment and resolved run date (sorted, no duplicates)."""
    return sorted({*existing, f"env:{environment}", f"run-date:{run_date}"})


def resolve_run_date(run_date: date | str | None, scheduled: Any, settings: Settings) -> date:
    """The explicit run date, else the day before the scheduled time in the schedule's time zone."""
    if run_date is None:
        return default_run_date(scheduled, settings.schedule_timezone)
    return run_date if isinstance(run_date, date) else date.fromisoformat(str(run_date))


def _iso(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def daily_run_name() -> str:
    """`flow_run_name` of the daily flow, called by Prefect when the run starts (settings are read
    here, at the run's edge). A name it cannot resolve falls back to the flow's name: the flow
    itself then reports the bad setting or parameter."""
    try:
        settings = load_settings()
        day = resolve_run_date(flow_run.parameters.get("run_date"), flow_run.scheduled_start_time, settings)
    except (ConfigurationError, ValueError, TypeError):
        return DAILY_FLOW
    return daily_name(settings.environment, day)


def backfill_run_name() -> str:
    """`flow_run_name` of the backfill flow (see `daily_run_name`)."""
    try:
        settings = load_settings()
    except ConfigurationError:
        return BACKFILL_FLOW
    parameters = flow_run.parameters
    return backfill_name(settings.environment, parameters.get("start", "?"), parameters.get("end", "?"))


def label_run(run_id: str, environment: str, run_date: str, build: str, logger: Any) -> None:
    """Tag the running flow run with its environment and resolved run date, and record the build
    that ran it as the run's flow version (so a run says which build it tested, whatever its
    deployment says now). Only logged if the API refuses: labels never decide a day's outcome."""
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(
                flow_run_id=UUID(run_id), tags=run_tags(flow_run.tags, environment, run_date), flow_version=build
            )
    except Exception as error:
        logger.warning("could not tag the run with its run date %s: %s", run_date, error)
