"""Publication of one day: staged writes and the all-or-nothing replacement of the day.

A run writes every output under ``_staging/<run_id>/`` first. Only when all of
them exist does `StagedDay.commit` swap each day partition in and write the
manifest last, so a run that dies half way leaves the previous day untouched
(and readers skip ``_``-prefixed folders, so staging never shows up in queries).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from ..contract.columns import CURATED_FILE_COLUMNS
from ..contract.layout import (
    CANDIDATES,
    CURATED,
    DAY_DATASETS,
    MANIFESTS,
    MARTS,
    QUARANTINE_FILES,
    QUARANTINE_ROWS,
    STAGING,
    day_partition,
    manifest_name,
    partition_value,
)
from ..contract.manifest import Manifest
from ..core.planning import bucket_order, id_hashes
from .storage import Location, move_tree, read_parquet_dir, remove_tree, write_bytes, write_parquet


class DayPublisher(Protocol):
    """What the pipeline needs of a publisher: somewhere to put a run's outputs, then one commit.

    Outputs written before `commit` must stay invisible to readers; `abort` drops them.
    """

    def write_curated(self, enriched: pd.DataFrame, part: str | None = None) -> dict[str, str]: ...
    def write_quarantine(self, quarantine: pd.DataFrame, part: str | None = None) -> None: ...
    def write_rejected_file(self, name: str, data: bytes) -> str: ...
    def write_mart(self, mart: pd.DataFrame) -> None: ...
    def commit(self, manifest: Manifest) -> str: ...
    def abort(self) -> None: ...


class StagedDay:
    """The outputs of one run for one sale date, staged until `commit`."""

    def __init__(self, warehouse: Location, sale_date: str, run_id: str) -> None:
        if not run_id or "/" in run_id:
            raise ValueError(f"run_id must be a non-empty path segment, got {run_id!r}")
        self.warehouse = warehouse
        self.sale_date = sale_date
        self.run_id = run_id
        self.staging_root = warehouse.join(STAGING, run_id)

    @property
    def fs(self) -> Any:
        return self.warehouse.fs

    def staged(self, dataset: str) -> str:
        return posixpath.join(self.staging_root, dataset, day_partition(self.sale_date))

    def final(self, dataset: str) -> str:
        return self.warehouse.join(dataset, day_partition(self.sale_date))

    def region_dir(self, region: str) -> str:
        return posixpath.join(self.staged(CURATED), f"region={partition_value(region)}")

    def write_curated(self, enriched: pd.DataFrame, part: str | None = None) -> dict[str, str]:
        """One Parquet file per region (and part); returns region -> staged partition URL."""
        paths: dict[str, str] = {}
        for region, rows in enriched.groupby("region", sort=True, observed=True):
            directory = self.region_dir(str(region))
            write_parquet(
                self.fs,
                posixpath.join(directory, self._file_name(part)),
                rows[list(CURATED_FILE_COLUMNS)].reset_index(drop=True),
            )
            paths[str(region)] = self.warehouse.url_of(directory)
        return paths

    def write_quarantine(self, quarantine: pd.DataFrame, part: str | None = None) -> None:
        if len(quarantine):
            write_parquet(self.fs, posixpath.join(self.staged(QUARANTINE_ROWS), self._file_name(part)), quarantine)

    def _file_name(self, part: str | None) -> str:
        return f"{self.run_id}-{part}.parquet" if part else f"{self.run_id}.parquet"

    def candidate_dir(self, bucket: int) -> str:
        return posixpath.join(self.staging_root, CANDIDATES, f"bucket={bucket:04d}")

    def write_candidates(self, rows: pd.DataFrame, file_index: int, buckets: int) -> None:
        """Spread rows over `buckets` by transaction_id, so each bucket can be de-duplicated alone."""
        if not len(rows):
            return
        hashes = id_hashes(rows["transaction_id"])
        order, bounds = bucket_order(hashes, buckets)
        rows = rows.drop(columns=["raw_line"], errors="ignore")
        rows["id_hash"] = hashes.view("int64")  # lets the duplicate check look only at repeated hashes
        # After the field checks sale_date is the run date; keep only spellings that differ (" 2024-01-15").
        rows["sale_date"] = rows["sale_date"].where(rows["sale_date"] != self.sale_date)
        table = pa.Table.from_pandas(rows, preserve_index=False).take(order)
        for bucket in range(buckets):
            if bounds[bucket + 1] > bounds[bucket]:
                part = table.slice(bounds[bucket], bounds[bucket + 1] - bounds[bucket])
                write_parquet(
                    self.fs,
                    posixpath.join(self.candidate_dir(bucket), f"file-{file_index:06d}.parquet"),
                    part,
                    compression="none",
                )

    def read_candidates(self, bucket: int) -> pd.DataFrame:
        """A bucket's rows from every file, in file order then line order (first seen first)."""
        candidates = read_parquet_dir(self.fs, self.candidate_dir(bucket))
        if len(candidates):
            candidates["sale_date"] = candidates["sale_date"].fillna(self.sale_date)
        candidates["raw_line"] = pd.Series(pd.NA, index=candidates.index, dtype="str")  # none: they parsed
        return candidates

    def write_rejected_file(self, name: str, data: bytes) -> str:
        """Keep an unreadable landing file byte for byte; returns where it will be published."""
        write_bytes(self.fs, posixpath.join(self.staged(QUARANTINE_FILES), name), data)
        return posixpath.join(self.final(QUARANTINE_FILES), name)

    def write_mart(self, mart: pd.DataFrame) -> None:
        if len(mart):
            write_parquet(self.fs, posixpath.join(self.staged(MARTS), f"{self.run_id}.parquet"), mart)

    def commit(self, manifest: Manifest, datasets: Iterable[str] = DAY_DATASETS) -> str:
        """Swap the staged day partitions in, then publish the manifest.

        Old partitions are parked under the staging prefix first; if anything
        fails, every swap is undone (new data back to staging, old data back in
        place), so a retry starts from the same state and readers never see a
        half-replaced day for longer than the swap itself.
        """
        swapped: list[str] = []
        try:
            for dataset in datasets:
                move_tree(self.fs, self.final(dataset), self.parked(dataset))
                swapped.append(dataset)
                move_tree(self.fs, self.staged(dataset), self.final(dataset))
            staged_manifest = posixpath.join(self.staging_root, MANIFESTS, manifest_name(self.sale_date))
            final_manifest = self.warehouse.join(MANIFESTS, manifest_name(self.sale_date))
            write_bytes(self.fs, staged_manifest, manifest.to_json_bytes())
            self.fs.makedirs(posixpath.dirname(final_manifest), exist_ok=True)
            self.fs.mv(staged_manifest, final_manifest)
        except BaseException:
            for dataset in reversed(swapped):
                move_tree(self.fs, self.final(dataset), self.staged(dataset))
                move_tree(self.fs, self.parked(dataset), self.final(dataset))
            raise
        self.abort()
        return self.warehouse.url_of(final_manifest)

    def parked(self, dataset: str) -> str:
        """Where the previously published partition waits while the new one moves in."""
        return posixpath.join(self.staging_root, "_replaced", dataset, day_partition(self.sale_date))

    def abort(self) -> None:
        """Drop everything staged by this run."""
        remove_tree(self.fs, self.staging_root)
