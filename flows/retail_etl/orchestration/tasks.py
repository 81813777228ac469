"""Prefect tasks: thin wrappers that give the pure steps retries, caching and storage.

Tasks take URLs and small values and return small summaries, never a day's data
through Dask: each reads what it needs from storage where it runs (a Dask worker)
and stages what it produces under the run's staging prefix. A batch's extraction is
cached (`ExtractionCache`) from inside the validate-files task that uses it.
`options` are fsspec's S3 options (endpoint, region: no credentials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE
from prefect.tasks import exponential_backoff

from ..contract.manifest import AcceptedFile, Manifest, RejectedFileRecord
from ..core.aggregate import RegionTotals
from ..core.checks import Rules, split_duplicates, split_field_checks
from ..core.enrich import enrich
from ..core.extraction import LandingBytes, Verdict, extract_files, is_landing_name, split_verdicts
from ..core.parse import ParseLimits
from ..errors import RetailEtlError
from ..io.delta import DataFile
from ..io.landing import DayListing, LandingFile, list_day, read_landing, read_landing_files
from ..io.publish import DayPublication, DayPublisher
from .results import ExtractionCache

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


def extract_batch(batch: list[LandingFile], options: dict[str, Any], limits: ParseLimits) -> pd.DataFrame:
    """Read a batch of landing files (one concurrent read) into raw rows, with each file's verdict.

    A file that cannot be parsed is a verdict in the frame's ``attrs`` (kept in the cached Parquet's
    metadata), not an exception: it is cached like rows, and one bad file does not fail its batch.
    I/O errors raise (and the task around it is retried).
    """
    readable = [source for source in batch if is_landing_name(source.name)]
    contents = dict(zip((source.url for source in readable), read_landing_files(readable, options), strict=True))
    return extract_files([LandingBytes(s.url, s.name, contents.pop(s.url, None)) for s in batch], limits)


@dataclass(frozen=True)
class BatchOutcome:
    """A validated batch (small: it travels back through Dask): its files' outcomes, quarantined rows
    per reason, and the quarantine data files it wrote."""

    accepted: list[AcceptedFile]
    rejected: list[RejectedFileRecord]
    reasons: dict[str, int]
    quarantine: list[DataFile]
    cached: bool = False


@task(name="validate-files", persist_result=True, cache_policy=WITHIN_RUN)
def validate_files(
    batch: list[tuple[int, LandingFile]],
    cache: ExtractionCache,
    warehouse: str,
    options: dict[str, Any],
    sale_date: str,
    run_id: str,
    rules: Rules,
    buckets: int,
    limits: ParseLimits,
) -> BatchOutcome:
    """Extract (cached, per batch) and validate a batch of landing files where the task runs (a Dask worker).

    The batch is checked in one pass (pandera's cost per call is then paid once); quarantine
    rows go to a (not yet committed) data file of the quarantine table, and the rows still in
    the running to scratch, bucketed by transaction_id for the day-wide duplicate check.
    Unreadable files are copied whole.
    """
    day = DayPublication(warehouse, options, sale_date, run_id)
    sources = [source for _, source in batch]
    extracted, cached = cache.fetch(sources, limits, lambda: extract_batch(sources, options, limits))
    raw, verdicts = split_verdicts(extracted)
    logger = get_run_logger()
    for verdict in verdicts:
        if verdict.reason:
            logger.warning("rejected %s: %s: %s", verdict.url, verdict.reason, verdict.detail)
    logger.info(
        "%s %d rows from %d files of %d",
        "reused the cached extraction of" if cached else "extracted",
        len(raw),
        sum(not v.reason for v in verdicts),
        len(sources),
    )
    accepted, rejected = _file_records(day, sources, verdicts, options)
    if not len(raw):
        return BatchOutcome(accepted, rejected, {}, [], cached)
    candidates, quarantine = split_field_checks(raw, rules)
    first_index = batch[0][0]
    quarantine_files = day.write_quarantine(quarantine, part=f"f{first_index:06d}")
    day.write_candidates(candidates, first_index, buckets)
    reasons = {str(reason): int(count) for reason, count in quarantine["reason"].value_counts(sort=False).items()}
    logger.info(
        "validated %d files, %d rows: %d pass the field checks, %d quarantined",
        len(accepted),
        len(raw),
        len(candidates),
        len(quarantine),
    )
    return BatchOutcome(accepted, rejected, reasons, quarantine_files, cached)


def _file_records(
    day: DayPublication, sources: list[LandingFile], verdicts: list[Verdict], options: dict[str, Any]
) -> tuple[list[AcceptedFile], list[RejectedFileRecord]]:
    """The manifest's record of each file; a rejected file is copied whole to quarantine/files (read
    again: rejections are rare, and a cached verdict has no bytes)."""
    accepted, rejected = [], []
    for source, verdict in zip(sources, verdicts, strict=True):
        if verdict.url != source.url:
            raise RuntimeError(f"extraction of {source.url} returned the verdict of {verdict.url}")
        if verdict.reason:
            kept = day.write_rejected_file(source.name, read_landing(source, options))
            record = RejectedFileRecord(
                file=source.url, reason=verdict.reason, detail=verdict.detail or "", quarantined_to=kept
            )
            rejected.append(record)
        else:
            accepted.append(AcceptedFile(file=source.url, rows=verdict.rows))
    return accepted, rejected


@dataclass(frozen=True)
class BucketOutcome:
    """What de-duplicating one transaction_id bucket found, the data files it wrote, and the
    per-region totals of its rows (the flow adds the buckets' totals up into the mart)."""

    duplicates: int = 0
    curated: list[DataFile] = field(default_factory=list)
    quarantine: list[DataFile] = field(default_factory=list)
    totals: list[RegionTotals] = field(default_factory=list)


@task(name="transform-bucket", persist_result=True, cache_policy=WITHIN_RUN)
def transform_bucket(
    bucket: int, warehouse: str, options: dict[str, Any], sale_date: str, run_id: str, rules: Rules
) -> BucketOutcome:
    """De-duplicate one transaction_id bucket, enrich the survivors, write them per region and
    aggregate them per region (while they are in memory: no second read of the curated files)."""
    day = DayPublication(warehouse, options, sale_date, run_id)
    candidates = day.read_candidates(bucket)
    if not len(candidates):
        return BucketOutcome()
    clean, duplicates = split_duplicates(candidates, rules)
    enriched = enrich(clean)
    part = f"b{bucket:04d}"
    quarantine_files = day.write_quarantine(duplicates, part=part)
    curated_files = day.write_curated(enriched, part=part)
    totals = [
        RegionTotals.of(str(region), rows) for region, rows in enriched.groupby("region", sort=True, observed=True)
    ]
    get_run_logger().info("bucket %d: %d rows written, %d duplicates", bucket, len(enriched), len(duplicates))
    return BucketOutcome(len(duplicates), curated_files, quarantine_files, totals)


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
