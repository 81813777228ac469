"""Prefect tasks: thin wrappers that give the pure steps retries, caching and storage.

Tasks take URLs and small values and return small summaries, never a day's data
through Dask: each reads what it needs from storage where it runs (a Dask worker)
and stages what it produces under the run's staging prefix. Only the cached
extraction returns a DataFrame, and it runs nested inside the task that uses it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE, CacheKeyFnPolicy
from prefect.filesystems import RemoteFileSystem
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from .aggregate import region_summary
from .contract import LANDING_SUFFIXES, PREFECT_CACHE_KEYS, PREFECT_RESULTS, day_partition
from .extract import EXTRACT_VERSION, RAW_COLUMNS, RejectedFile, read_landing_bytes
from .serializers import ParquetSerializer
from .settings import Settings
from .storage import file_identity, is_remote, location, read_parquet_dir
from .transform import enrich
from .validation import Rules, split_duplicates, split_field_checks
from .warehouse import StagedDay


#: Dask tasks need a keyed cache policy for Prefect to persist their results (a keyless
#: transaction writes nothing); within one flow run a retry then reuses finished tasks.
WITHIN_RUN = INPUTS + TASK_SOURCE + RUN_ID


class LandingFile(BaseModel):
    """A landing file and what identifies its content (the extraction cache key)."""

    url: str
    name: str
    identity: dict[str, Any]


def landing_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Same path, size and ETag/mtime (and extractor version) means the same extraction."""
    source: LandingFile = parameters["source"]
    payload = json.dumps([EXTRACT_VERSION, source.url, source.identity], sort_keys=True, default=str)
    return "extract-" + hashlib.sha256(payload.encode()).hexdigest()


def result_storage(warehouse: str, settings: Settings) -> Path | RemoteFileSystem:
    """Prefect result storage under `<warehouse>/_prefect/results` (S3 when the warehouse is).

    Prefect needs remote result storage to be a saved block; it is saved with the
    endpoint only, and credentials come from the AWS variables of each process.
    """
    url = posixpath.join(warehouse, PREFECT_RESULTS)
    if not is_remote(url):
        return Path(url)
    block = RemoteFileSystem(basepath=url, settings=settings.storage_options(credentials=False))
    digest = hashlib.sha256(f"{url} {settings.s3_endpoint_url}".encode()).hexdigest()[:12]
    block.save(f"retail-etl-results-{digest}", overwrite=True)
    return block


def cache_key_storage(warehouse: str, settings: Settings) -> Path | RemoteFileSystem:
    """Where extraction cache keys (result metadata) live, apart from the raw Parquet values."""
    url = posixpath.join(warehouse, PREFECT_CACHE_KEYS)
    if not is_remote(url):
        return Path(url)
    return RemoteFileSystem(basepath=url, settings=settings.storage_options(credentials=False))


def io_options(settings: Settings) -> dict[str, Any]:
    """Retries with exponential backoff and jitter, from settings."""
    return {
        "retries": settings.io_retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=settings.retry_delay_seconds),
        "retry_jitter_factor": settings.retry_jitter_factor,
    }


@task(name="list-landing-files", persist_result=True, cache_policy=NO_CACHE)
def list_landing_files(landing: str, sale_date: str) -> list[LandingFile]:
    """Every file of the day's landing partition, sorted by name (the duplicate tie-break)."""
    root = location(landing)
    folder = root.join("sales", day_partition(sale_date))
    root.fs.invalidate_cache(folder)
    if not root.fs.exists(folder):
        return []
    files = []
    for path in sorted(root.fs.ls(folder, detail=False)):
        name = posixpath.basename(path)
        if name.startswith((".", "_")) or root.fs.isdir(path):
            continue  # hidden files and markers such as _SUCCESS
        files.append(LandingFile(url=root.url_of(path), name=name, identity=file_identity(root.fs, path)))
    return files


@task(name="extract-file", persist_result=True, result_serializer=ParquetSerializer())
def extract_file(source: LandingFile) -> pd.DataFrame:
    """Read one landing file into raw string rows.

    A file that cannot be read gives an empty frame whose ``attrs["rejected"]`` says why,
    rather than an exception: the verdict is cached like any extraction, and one bad file
    does not roll back the transaction of the batch it was read in. I/O errors still raise
    (and are retried).
    """
    try:
        if not source.name.lower().endswith(LANDING_SUFFIXES):
            raise RejectedFile("unsupported_file_type", f"{source.name}: expected {', '.join(LANDING_SUFFIXES)}")
        loc = location(source.url)
        frame = read_landing_bytes(loc.fs.cat_file(loc.root), source.name)
    except RejectedFile as rejected:
        frame = pd.DataFrame({column: pd.Series(dtype="str") for column in RAW_COLUMNS})
        frame.attrs["rejected"] = {"reason": rejected.reason, "detail": rejected.detail}
        get_run_logger().warning("rejected %s: %s", source.name, rejected)
        return frame
    get_run_logger().info("extracted %d rows from %s", len(frame), source.name)
    return frame


def configured_extract(warehouse: str, settings: Settings, storage: Any):
    """extract_file with the cache policy, expiry, retries and result storage of this warehouse."""
    return extract_file.with_options(
        cache_policy=CacheKeyFnPolicy(cache_key_fn=landing_cache_key).configure(
            key_storage=cache_key_storage(warehouse, settings)
        ),
        cache_expiration=settings.cache_expiration,
        result_storage=storage,
        **io_options(settings),
    )


class FileOutcome(BaseModel):
    """What validating one landing file found (small: it travels back through Dask)."""

    url: str
    name: str
    rows: int = 0
    reasons: dict[str, int] = {}
    rejected: dict[str, str] | None = None


@task(name="validate-files", persist_result=True, cache_policy=(INPUTS - "extract") + TASK_SOURCE + RUN_ID)
def validate_files(batch: list[tuple[int, LandingFile]], extract: Any, warehouse: str, sale_date: str,
                   run_id: str, rules: Rules, buckets: int) -> list[FileOutcome]:
    """Extract (cached, per file) and validate a batch of landing files where the task runs (a Dask worker).

    The batch is checked in one pass (pandera's cost per call is then paid once); quarantine
    rows and the rows still in the running are staged as Parquet, the latter bucketed by
    transaction_id for the day-wide duplicate check. Unreadable files are copied whole.
    """
    day = StagedDay(location(warehouse), sale_date, run_id)
    outcomes: list[FileOutcome] = []
    frames: list[pd.DataFrame] = []
    for _, source in batch:
        raw = extract(source)
        if "rejected" in raw.attrs:
            loc = location(source.url)
            kept = day.write_rejected_file(source.name, loc.fs.cat_file(loc.root))
            outcomes.append(FileOutcome(url=source.url, name=source.name,
                                        rejected={"file": source.url, **raw.attrs["rejected"], "quarantined_to": kept}))
            continue
        outcomes.append(FileOutcome(url=source.url, name=source.name, rows=len(raw)))
        frames.append(raw)
    if not frames:
        return outcomes
    accepted = {outcome.url: outcome for outcome in outcomes if not outcome.rejected}
    raw = pd.concat(frames, ignore_index=True)
    raw["source_file"] = pd.Categorical.from_codes(
        np.repeat(np.arange(len(frames)), [len(frame) for frame in frames]), categories=list(accepted))
    del frames
    candidates, quarantine = split_field_checks(raw, rules)
    first_index = batch[0][0]
    day.write_quarantine(quarantine, part=f"f{first_index:06d}")
    day.write_candidates(candidates, first_index, buckets)
    counts = quarantine.groupby(["source_file", "reason"], observed=True).size()
    for (url, reason), count in counts.items():
        accepted[url].reasons[str(reason)] = int(count)
    get_run_logger().info("validated %d files, %d rows: %d pass the field checks, %d quarantined",
                          len(accepted), len(raw), len(candidates), len(quarantine))
    return outcomes


@task(name="transform-bucket", persist_result=True, cache_policy=WITHIN_RUN)
def transform_bucket(bucket: int, warehouse: str, sale_date: str, run_id: str, rules: Rules) -> dict:
    """De-duplicate one transaction_id bucket, enrich the survivors and stage them per region."""
    day = StagedDay(location(warehouse), sale_date, run_id)
    candidates = day.read_candidates(bucket)
    if not len(candidates):
        return {"duplicates": 0, "regions": []}
    clean, duplicates = split_duplicates(candidates, rules)
    enriched = enrich(clean)
    part = f"b{bucket:04d}"
    day.write_quarantine(duplicates, part=part)
    regions = day.write_curated(enriched, part=part)
    get_run_logger().info("bucket %d: %d rows staged, %d duplicates", bucket, len(enriched), len(duplicates))
    return {"duplicates": len(duplicates), "regions": sorted(regions)}


@task(name="aggregate-region", persist_result=True, cache_policy=WITHIN_RUN)
def aggregate_region(region: str, partition_url: str) -> dict:
    """Mart row of one region, read from its staged partition where the task runs (a Dask worker)."""
    loc = location(partition_url)
    rows = read_parquet_dir(loc.fs, loc.root, columns=["quantity", "total", "ticket_size"])
    summary = region_summary(region, rows)
    get_run_logger().debug("region %s: %d rows, revenue %.2f", region, summary["transactions"], summary["revenue"])
    return summary


@task(name="publish-manifest", persist_result=True, cache_policy=NO_CACHE)
def publish_manifest(manifest: dict, mart: pd.DataFrame, warehouse: str, sale_date: str, run_id: str) -> str:
    """Stage the mart, then swap every day partition in and write the manifest last."""
    day = StagedDay(location(warehouse), sale_date, run_id)
    day.write_mart(mart)
    url = day.commit(manifest)
    get_run_logger().info(
        "published %s: %d rows in, %d published, %d quarantined",
        sale_date, manifest["rows_in"], manifest["rows_published"], manifest["rows_quarantined"],
    )
    return url
