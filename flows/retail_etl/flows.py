"""The Prefect flows: one sale date (`daily_sales_etl`) and a date range (`backfill`).

Run one day against a temporary local API and Dask cluster::

    from retail_etl.flows import daily_sales_etl
    from retail_etl.runtime import platform
    with platform():
        daily_sales_etl(run_date="2024-01-15", landing="./landing", warehouse="./warehouse")
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.runtime import flow_run

from .aggregate import mart_frame
from .contract import ROW_REASONS
from .extract import RejectedFile
from .manifest import build_manifest
from .runtime import dask_task_runner
from .settings import Settings
from .storage import location, normalize
from .tasks import (
    aggregate_region,
    cache_key_storage,
    extract_file,
    io_options,
    landing_cache_key,
    list_landing_files,
    publish_manifest,
    publish_staged,
    quarantine_file,
    result_storage,
    transform_rows,
    validate_rows,
)
from .validation import Rules
from .warehouse import StagedDay


class StrictModeError(RuntimeError):
    """--strict and at least one landing file could not be read."""


def default_run_date(scheduled: datetime | None, timezone: str) -> date:
    """The day before the scheduled time (now, if unscheduled), in the schedule's time zone.

    >>> default_run_date(datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("UTC")), "America/New_York")
    datetime.date(2024, 3, 8)
    """
    moment = pd.Timestamp(scheduled or datetime.now(tz=ZoneInfo("UTC")))
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return moment.tz_convert(ZoneInfo(timezone)).date() - timedelta(days=1)


def _rules(run_date: date, settings: Settings) -> Rules:
    return Rules(
        run_date=run_date,
        max_quantity=settings.max_quantity,
        max_unit_price=settings.max_unit_price,
        regions=frozenset(settings.regions) if settings.regions else None,
    )


def _day_rows(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One frame of every accepted file's rows, in file-name then line order."""
    if not frames:
        from .extract import RAW_COLUMNS

        empty = pd.DataFrame({column: pd.Series(dtype="str") for column in RAW_COLUMNS})
        empty["source_line"] = empty["source_line"].astype("int64")
        empty["source_file"] = pd.Series(dtype="str")
        return empty
    raw = pd.concat([frame for _, frame in frames], ignore_index=True)
    lengths = [len(frame) for _, frame in frames]
    codes = np.repeat(np.arange(len(frames)), lengths)
    raw["source_file"] = pd.Categorical.from_codes(codes, categories=[url for url, _ in frames])
    return raw


def _quarantine_markdown(sale_date: str, manifest: dict) -> str:
    lines = [f"# Quarantine for {sale_date}", "",
             f"{manifest['rows_quarantined']} of {manifest['rows_in']} rows quarantined.", "",
             "| reason | rows |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in manifest["quarantine_reasons"].items()]
    if manifest["files_rejected"]:
        lines += ["", "## Rejected files", "", "| file | reason | detail |", "|---|---|---|"]
        lines += [f"| {f['file']} | {f['reason']} | {f['detail']} |" for f in manifest["files_rejected"]]
    return "\n".join(lines)


@flow(name="daily-sales-etl", task_runner=dask_task_runner(), validate_parameters=True)
def daily_sales_etl(run_date: date | None = None, landing: str | None = None, warehouse: str | None = None,
                    strict: bool = False) -> dict:
    """Validate, enrich, aggregate and publish one sale date; returns the day's manifest.

    `run_date` defaults to the day before the scheduled time; `landing` and
    `warehouse` default to RETAIL_ETL_LANDING / RETAIL_ETL_WAREHOUSE. With
    `strict`, a landing file that cannot be read fails the day instead of being
    quarantined.
    """
    settings = Settings()
    logger = get_run_logger()
    run_date = run_date or default_run_date(flow_run.scheduled_start_time, settings.schedule_timezone)
    sale_date = run_date.isoformat()
    landing = normalize(landing or settings.landing)
    warehouse = normalize(warehouse or settings.warehouse)
    run_id = str(flow_run.id)
    logger.info("processing %s from %s into %s", sale_date, landing, warehouse)

    io = io_options(settings) | {"result_storage": result_storage(warehouse, settings)}
    extract = extract_file.with_options(
        cache_policy=CacheKeyFnPolicy(cache_key_fn=landing_cache_key).configure(
            key_storage=cache_key_storage(warehouse, settings)
        ),
        cache_expiration=settings.cache_expiration,
        **io,
    )

    sources = list_landing_files.with_options(**io)(landing, sale_date)
    if not sources:
        logger.warning("no landing files for %s under %s: publishing an empty day", sale_date, landing)
    frames: list[tuple[str, pd.DataFrame]] = []
    rejected: list[tuple[object, RejectedFile]] = []
    for source in sources:
        state = extract(source, return_state=True)
        if state.is_completed():
            frames.append((source.url, state.result()))
            continue
        error = state.result(raise_on_failure=False)
        if not isinstance(error, RejectedFile):
            raise error
        logger.warning("rejected %s: %s", source.name, error)
        rejected.append((source, error))
    if rejected and strict:
        names = ", ".join(source.name for source, _ in rejected)
        raise StrictModeError(f"--strict: {len(rejected)} unreadable landing file(s) for {sale_date}: {names}")

    day = StagedDay(location(warehouse), sale_date, run_id)
    try:
        files_rejected = [
            {"file": source.url, "reason": error.reason, "detail": error.detail,
             "quarantined_to": quarantine_file.with_options(**io)(source, warehouse, sale_date, run_id)}
            for source, error in rejected
        ]
        raw = _day_rows(frames)
        clean, quarantine = validate_rows(raw, _rules(run_date, settings))
        enriched = transform_rows(clean)
        del raw, clean
        partitions = publish_staged.with_options(**io)(enriched, quarantine, warehouse, sale_date, run_id)
        del enriched
        summaries = aggregate_region.with_options(**io).map(list(partitions), list(partitions.values())).result()
        reasons = quarantine["reason"].value_counts()
        manifest = build_manifest(
            run_id=run_id,
            sale_date=sale_date,
            landing=landing,
            rows_in=sum(len(frame) for _, frame in frames),
            quarantine_reasons={reason: int(reasons[reason]) for reason in ROW_REASONS if reason in reasons},
            regions=summaries,
            files_accepted=[{"file": url, "rows": len(frame)} for url, frame in frames],
            files_rejected=files_rejected,
        )
        mart = mart_frame(summaries)
        manifest["manifest_url"] = publish_manifest.with_options(**io)(manifest, mart, warehouse, sale_date, run_id)
    except BaseException:
        day.abort()
        raise

    create_table_artifact(
        key="retail-etl-region-figures",
        table=mart.to_dict("records"),
        description=f"Per-region figures for {sale_date} ({manifest['rows_published']} rows published)",
    )
    create_markdown_artifact(key="retail-etl-quarantine", markdown=_quarantine_markdown(sale_date, manifest),
                             description=f"Quarantine summary for {sale_date}")
    return manifest


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


@flow(name="retail-etl-backfill", validate_parameters=True)
def backfill(start: date, end: date, landing: str | None = None, warehouse: str | None = None,
             strict: bool = False) -> list[dict]:
    """Run `daily_sales_etl` for every date from start to end (inclusive) as subflows.

    Every day is attempted; the backfill fails at the end if any day failed.
    """
    logger = get_run_logger()
    days = date_range(start, end)
    daily = daily_sales_etl.with_options(task_runner=dask_task_runner())
    manifests, failed = [], []
    for number, day in enumerate(days, start=1):
        state = daily(run_date=day, landing=landing, warehouse=warehouse, strict=strict, return_state=True)
        if state.is_completed():
            manifest = state.result()
            manifests.append(manifest)
            logger.info("day %d/%d %s: %d rows in, %d published, %d quarantined", number, len(days), day,
                        manifest["rows_in"], manifest["rows_published"], manifest["rows_quarantined"])
        else:
            failed.append(day.isoformat())
            logger.error("day %d/%d %s failed: %s", number, len(days), day, state.message)
    if failed:
        raise RuntimeError(f"backfill: {len(failed)} of {len(days)} days failed: {', '.join(failed)}")
    return manifests
