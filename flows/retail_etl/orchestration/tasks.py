"""Prefect tasks: thin wrappers that give the pure steps retries, caching and storage.

Tasks take URLs and small values and return small summaries, never a day's data
through Dask: each reads what it needs from storage where it runs (a Dask worker)
and stages what it produces under the run's staging prefix. Only the cached
extraction returns a DataFrame, and it runs nested inside the task that uses it.
`options` are fsspec's S3 options (endpoint, region: no credentials).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE, CacheKeyFnPolicy
from prefect.filesystems import RemoteFileSystem
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from ..contract.layout import LANDING_SUFFIXES
from ..contract.manifest import Manifest, RejectedFileRecord
from ..core.aggregate import RegionSummary, region_summary
from ..core.checks import Rules, split_duplicates, split_field_checks
from ..core.enrich import enrich
from ..core.parse import RAW_COLUMNS, read_landing_bytes, reject
from ..errors import RejectedFile, RetailEtlError
from ..io.delta import DataFile
from ..io.landing import DayListing, LandingFile, list_day, read_landing
from ..io.publish import DayPublication, DayPublisher
from ..io.storage import read_parquet_files
from .results import ParquetSerializer, cache_key_storage, landing_cache_key

#: Dask tasks need a keyed cache policy for Prefect to persist their results (a keyless
#: transaction writes nothing); within one flow run a retry then reuses finished tasks.
WITHIN_RUN = INPUTS + TASK_SOURCE + RUN_ID


def io_options(retries: int, delay_seconds: float, jitter_factor: float) -> dict[str, Any]:
    """Retries with exponential backoff and jitter, for transient failures only."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=delay_seconds),
        "retry_jitter_factor": jitter_factor,
        "retry_condition_fn": is_transient,
    }


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry storage and network failures; an error retail-etl raised on purpose (a conflict with
    another run, a refused day) would only repeat itself."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, RetailEtlError)


@task(name="list-landing-files", persist_result=True, cache_policy=NO_CACHE)
def list_landing_files(landing: str, sale_date: str, options: dict[str, Any]) -> DayListing:
    """Every file of the day's landing partition, sorted by name (the duplicate tie-break), and what was skipped."""
    return list_day(landing, sale_date, options)


@task(name="extract-file", persist_result=True, result_serializer=ParquetSerializer())
def extract_file(source: LandingFile, options: dict[str, Any]) -> pd.DataFrame:
    """Read one landing file into raw string rows.

    A file that cannot be read gives an empty frame whose ``attrs["rejected"]`` says why,
    rather than an exception: the verdict is cached like any extraction, and one bad file
    does not roll back the transaction of the batch it was read in. I/O errors still raise
    (and are retried).
    """
    try:
        if not source.name.lower().endswith(LANDING_SUFFIXES):
            raise reject("unsupported_file_type", f"{source.name}: expected {', '.join(LANDING_SUFFIXES)}")
        frame = read_landing_bytes(read_landing(source, options), source.name)
    except RejectedFile as rejected:
        frame = pd.DataFrame({column: pd.Series(dtype="str") for column in RAW_COLUMNS})
        frame.attrs["rejected"] = {"reason": rejected.reason, "detail": rejected.detail}
        get_run_logger().warning("rejected %s: %s", source.name, rejected)
        return frame
    get_run_logger().info("extracted %d rows from %s", len(frame), source.name)
    return frame


def configured_extract(
    warehouse: str,
    options: dict[str, Any],
    storage: Path | RemoteFileSystem,
    expiration: timedelta,
    io: dict[str, Any],
) -> Any:
    """extract_file with the cache policy, expiry, retries and result storage of this warehouse."""
    return extract_file.with_options(
        cache_policy=CacheKeyFnPolicy(cache_key_fn=landing_cache_key).configure(
            key_storage=cache_key_storage(warehouse, options)
        ),
        cache_expiration=expiration,
        result_storage=storage,
        **io,
    )


class FileOutcome(BaseModel):
    """What validating one landing file found (small: it travels back through Dask)."""

    url: str
    name: str
    rows: int = 0
    reasons: dict[str, int] = {}
    rejected: RejectedFileRecord | None = None


@dataclass(frozen=True)
class BatchOutcome:
    """A validated batch: each file's outcome, and the quarantine data files it wrote."""

    files: list[FileOutcome]
    quarantine: list[DataFile]


@task(name="validate-files", persist_result=True, cache_policy=(INPUTS - "extract") + TASK_SOURCE + RUN_ID)
def validate_files(
    batch: list[tuple[int, LandingFile]],
    extract: Callable[..., pd.DataFrame],
    warehouse: str,
    options: dict[str, Any],
    sale_date: str,
    run_id: str,
    rules: Rules,
    buckets: int,
) -> BatchOutcome:
    """Extract (cached, per file) and validate a batch of landing files where the task runs (a Dask worker).

    The batch is checked in one pass (pandera's cost per call is then paid once); quarantine
    rows go to a (not yet committed) data file of the quarantine table, and the rows still in
    the running to scratch, bucketed by transaction_id for the day-wide duplicate check.
    Unreadable files are copied whole.
    """
    day = DayPublication(warehouse, options, sale_date, run_id)
    outcomes: list[FileOutcome] = []
    frames: list[pd.DataFrame] = []
    for _, source in batch:
        raw = extract(source, options)
        if "rejected" in raw.attrs:
            kept = day.write_rejected_file(source.name, read_landing(source, options))
            record = RejectedFileRecord(file=source.url, **raw.attrs["rejected"], quarantined_to=kept)
            outcomes.append(FileOutcome(url=source.url, name=source.name, rejected=record))
            continue
        outcomes.append(FileOutcome(url=source.url, name=source.name, rows=len(raw)))
        frames.append(raw)
    if not frames:
        return BatchOutcome(outcomes, [])
    accepted = {outcome.url: outcome for outcome in outcomes if not outcome.rejected}
    raw = pd.concat(frames, ignore_index=True)
    raw["source_file"] = pd.Categorical.from_codes(
        np.repeat(np.arange(len(frames)), [len(frame) for frame in frames]), categories=pd.Index(list(accepted))
    )
    del frames
    candidates, quarantine = split_field_checks(raw, rules)
    first_index = batch[0][0]
    quarantine_files = day.write_quarantine(quarantine, part=f"f{first_index:06d}")
    day.write_candidates(candidates, first_index, buckets)
    counts = quarantine.groupby(["source_file", "reason"], observed=True).size()
    for key, count in counts.items():
        url, reason = cast(tuple[str, str], key)
        accepted[str(url)].reasons[str(reason)] = int(count)
    get_run_logger().info(
        "validated %d files, %d rows: %d pass the field checks, %d quarantined",
        len(accepted),
        len(raw),
        len(candidates),
        len(quarantine),
    )
    return BatchOutcome(outcomes, quarantine_files)


@dataclass(frozen=True)
class BucketOutcome:
    """What de-duplicating one transaction_id bucket found, and the data files it wrote."""

    duplicates: int = 0
    curated: list[DataFile] = field(default_factory=list)
    quarantine: list[DataFile] = field(default_factory=list)


@task(name="transform-bucket", persist_result=True, cache_policy=WITHIN_RUN)
def transform_bucket(
    bucket: int, warehouse: str, options: dict[str, Any], sale_date: str, run_id: str, rules: Rules
) -> BucketOutcome:
    """De-duplicate one transaction_id bucket, enrich the survivors and write them per region."""
    day = DayPublication(warehouse, options, sale_date, run_id)
    candidates = day.read_candidates(bucket)
    if not len(candidates):
        return BucketOutcome()
    clean, duplicates = split_duplicates(candidates, rules)
    enriched = enrich(clean)
    part = f"b{bucket:04d}"
    quarantine_files = day.write_quarantine(duplicates, part=part)
    curated_files = day.write_curated(enriched, part=part)
    get_run_logger().info("bucket %d: %d rows written, %d duplicates", bucket, len(enriched), len(duplicates))
    return BucketOutcome(len(duplicates), curated_files, quarantine_files)


@task(name="aggregate-region", persist_result=True, cache_policy=WITHIN_RUN)
def aggregate_region(region: str, file_urls: list[str], options: dict[str, Any]) -> RegionSummary:
    """Mart row of one region, from this run's curated data files of it (read where the task runs)."""
    rows = read_parquet_files(file_urls, options, columns=["quantity", "total", "ticket_size"])
    summary = region_summary(region, rows)
    get_run_logger().debug("region %s: %d rows, revenue %.2f", region, summary.transactions, summary.revenue)
    return summary


@task(name="publish-day", persist_result=True, cache_policy=NO_CACHE)
def publish_day(
    manifest: Manifest,
    mart: pd.DataFrame,
    files: dict[str, list[DataFile]],
    warehouse: str,
    options: dict[str, Any],
    sale_date: str,
    run_id: str,
) -> Manifest:
    """Write the mart, commit the day in every table, then write the manifest naming the versions."""
    day: DayPublisher = DayPublication(warehouse, options, sale_date, run_id, leased=True)
    logger = get_run_logger()
    committed = day.commit(
        {**files, "marts": day.write_mart(mart)},
        manifest,
        on_commit=lambda table, version: logger.info("committed %s %s: version %d", table, sale_date, version),
    )
    logger.info(
        "published %s: %d rows in, %d published, %d quarantined (table versions %s)",
        sale_date,
        manifest.rows_in,
        manifest.rows_published,
        manifest.rows_quarantined,
        committed.tables,
    )
    return committed
