"""Prefect tasks: thin wrappers that give the pure steps retries, caching and storage.

Tasks take URLs and small values, never a day's data through Dask: the
DataFrames of extract/validate/transform stay in the flow's process, and the
per-region aggregation reads its partition where it runs.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.filesystems import RemoteFileSystem
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from .aggregate import region_summary
from .contract import CURATED_FILE_COLUMNS, LANDING_SUFFIXES, PREFECT_CACHE_KEYS, PREFECT_RESULTS, day_partition
from .extract import EXTRACT_VERSION, RejectedFile, read_landing_bytes
from .serializers import ParquetSerializer
from .settings import Settings
from .storage import file_identity, is_remote, location, read_parquet_dir
from .transform import enrich
from .validation import Rules, split_rows
from .warehouse import StagedDay


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


def retry_unless_rejected(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O failures; a file that cannot be parsed will not parse on a retry."""
    try:
        state.result()
    except RejectedFile:
        return False
    except Exception:
        return True
    return False


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


@task(name="extract-file", persist_result=True, result_serializer=ParquetSerializer(),
      retry_condition_fn=retry_unless_rejected)
def extract_file(source: LandingFile) -> pd.DataFrame:
    """Read one landing file into raw string rows; raises RejectedFile if it cannot be read."""
    if not source.name.lower().endswith(LANDING_SUFFIXES):
        raise RejectedFile("unsupported_file_type", f"{source.name}: expected {', '.join(LANDING_SUFFIXES)}")
    loc = location(source.url)
    data = loc.fs.cat_file(loc.root)
    frame = read_landing_bytes(data, source.name)
    get_run_logger().info("extracted %d rows from %s", len(frame), source.name)
    return frame


@task(name="quarantine-file", persist_result=True, cache_policy=NO_CACHE)
def quarantine_file(source: LandingFile, warehouse: str, sale_date: str, run_id: str) -> str:
    """Copy an unreadable landing file byte for byte into the staged quarantine/files."""
    loc = location(source.url)
    return StagedDay(location(warehouse), sale_date, run_id).write_rejected_file(
        source.name, loc.fs.cat_file(loc.root)
    )


@task(name="validate-rows", persist_result=False, cache_policy=NO_CACHE)
def validate_rows(raw: pd.DataFrame, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame]:
    clean, quarantine = split_rows(raw, rules)
    logger = get_run_logger()
    logger.info("validated %d rows: %d clean, %d quarantined", len(raw), len(clean), len(quarantine))
    for reason, count in quarantine["reason"].value_counts().sort_index().items():
        logger.debug("quarantine reason %s: %d rows", reason, count)
    return clean, quarantine


@task(name="transform-rows", persist_result=False, cache_policy=NO_CACHE)
def transform_rows(clean: pd.DataFrame) -> pd.DataFrame:
    return enrich(clean)


@task(name="publish-staged", persist_result=True, cache_policy=NO_CACHE)
def publish_staged(enriched: pd.DataFrame, quarantine: pd.DataFrame, warehouse: str, sale_date: str,
                   run_id: str) -> dict[str, str]:
    """Write curated (per region) and quarantine Parquet under the run's staging prefix."""
    day = StagedDay(location(warehouse), sale_date, run_id)
    regions = day.write_curated(enriched)
    day.write_quarantine(quarantine)
    get_run_logger().info("staged %d curated rows in %d regions", len(enriched), len(regions))
    return regions


@task(name="aggregate-region", persist_result=True, cache_policy=NO_CACHE)
def aggregate_region(region: str, partition_url: str) -> dict:
    """Mart row of one region, read from its staged partition where the task runs (a Dask worker)."""
    loc = location(partition_url)
    rows = read_parquet_dir(loc.fs, loc.root)
    missing = set(CURATED_FILE_COLUMNS) - set(rows.columns)
    if missing:
        raise ValueError(f"{partition_url} lacks columns {sorted(missing)}")
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
