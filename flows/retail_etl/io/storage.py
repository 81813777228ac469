"""One way to reach local folders and S3 alike, through fsspec.

Every path the pipeline handles is a URL string (a local absolute path or
``s3://bucket/prefix``); `location` turns it into a filesystem plus a path.

>>> loc = location("/tmp/wh")
>>> loc.join("curated", "sales")
'/tmp/wh/curated/sales'
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem


def is_remote(url: str | os.PathLike) -> bool:
    url = os.fspath(url)
    return "://" in url and not url.startswith("file://")


def normalize(url: str | os.PathLike) -> str:
    """Absolute local paths (so Dask workers agree on them), URLs unchanged."""
    url = os.fspath(url)
    if is_remote(url):
        return url.rstrip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    return os.path.abspath(os.path.expanduser(url))


@dataclass(frozen=True)
class Location:
    """A root URL with the filesystem that serves it."""

    url: str
    fs: Any

    @property
    def root(self) -> str:
        return self.fs._strip_protocol(self.url) if is_remote(self.url) else self.url

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def url_of(self, path: str) -> str:
        """The full URL of a path on this filesystem (for task arguments)."""
        return self.fs.unstrip_protocol(path) if is_remote(self.url) else path


def location(url: str | os.PathLike, options: Mapping[str, Any] | None = None) -> Location:
    """The filesystem serving `url`; `options` are fsspec's S3 options (endpoint, region)."""
    url = normalize(url)
    if is_remote(url):
        fs, _ = fsspec.core.url_to_fs(url, **dict(options or {}))
    else:
        fs = fsspec.filesystem("file")
    return Location(url=url, fs=fs)


def make_bucket(bucket: str, options: Mapping[str, Any] | None = None) -> bool:
    """Create an S3 bucket unless it exists; True if created. (us-east-1 takes no location constraint.)"""
    fs = location(f"s3://{bucket}", options).fs
    if fs.exists(bucket):
        return False
    params: dict[str, Any] = {"Bucket": bucket}
    region = (dict(options or {}).get("client_kwargs") or {}).get("region_name")
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    fs.call_s3("create_bucket", **params)
    fs.invalidate_cache()
    return True


def list_entries(fs: Any, path: str) -> list[dict[str, Any]]:
    """What is directly under `path` with its details, from one listing (no request per entry),
    sorted by name; empty if `path` does not exist. Local entries carry ``mtime_ns``,
    ``ctime_ns`` and ``ino`` from the stat of the listing itself."""
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return []
    if isinstance(fs, LocalFileSystem):
        entries = _local_entries(path)
    else:
        entries = fs.ls(path, detail=True)
    return sorted(entries, key=lambda entry: str(entry["name"]))


def _local_entries(path: str) -> list[dict[str, Any]]:
    """A local folder's entries with what identifies their content (fsspec's local listing rounds times
    to floats, and its ``created`` is the birth time where the platform has one, not the change time)."""
    entries = []
    with os.scandir(path) as found:
        for entry in found:
            stat = entry.stat()  # follows symbolic links, as reading the file does
            kind = "directory" if entry.is_dir() else "file" if entry.is_file() else "other"
            entries.append(
                {
                    "name": posixpath.join(path, entry.name),
                    "type": kind,
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "ctime_ns": stat.st_ctime_ns,
                    "ino": stat.st_ino,
                }
            )
    return entries


#: Listing details that change when an object's content can have changed: S3's ETag, VersionId
#: (versioned buckets) and LastModified; on local disk modification time, change time and inode.
IDENTITY_KEYS = ("ETag", "etag", "VersionId", "LastModified", "mtime_ns", "ctime_ns", "ino")


def file_identity(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a listed file's content: its size plus every identity detail the listing has.

    Local disk: a same-size rewrite whose modification time is set back (``os.utime``) still moves
    the change time, which only the kernel sets. What it cannot see is a rewrite of identical size
    within the file system's timestamp resolution that also keeps the inode: a store needs content
    hashes (ETags) for that.

    >>> file_identity({"size": 3, "ETag": '"abc"', "LastModified": "2024-01-15 06:00:00+00:00"})
    {'size': 3, 'etag': 'abc', 'LastModified': '2024-01-15 06:00:00+00:00'}
    """
    identity: dict[str, Any] = {"size": int(entry.get("size") or 0)}
    for key in IDENTITY_KEYS:
        value = entry.get(key)
        if value is None or value == "":
            continue
        if key in ("ETag", "etag"):
            identity["etag"] = str(value).strip('"')
        else:
            identity[key] = value if isinstance(value, int) else str(value)
    if len(identity) == 1 and entry.get("mtime") is not None:  # another fsspec backend
        identity["mtime"] = str(entry["mtime"])
    return identity


def write_bytes(fs: Any, path: str, data: bytes) -> None:
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def read_json(fs: Any, path: str) -> Any:
    with fs.open(path, "rb") as handle:
        return json.load(handle)


#: Columns with unique values (dictionary-encoding them is wasted work, measured ~25% of a write).
UNIQUE_COLUMNS = frozenset({"transaction_id", "raw_line", "source_line", "total"})


def parquet_bytes(frame: pd.DataFrame | pa.Table, compression: str = "zstd") -> bytes:
    """Parquet of a frame; zstd for published data, none for scratch files read back at once."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    dictionary = [name for name in table.column_names if name not in UNIQUE_COLUMNS]
    pq.write_table(table, sink, compression=compression, use_dictionary=dictionary)
    return sink.getvalue()


def write_parquet(fs: Any, path: str, frame: pd.DataFrame | pa.Table, compression: str = "zstd") -> None:
    write_bytes(fs, path, parquet_bytes(frame, compression))


def iter_parquet_files(
    urls: list[str], options: Mapping[str, Any] | None = None, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The Parquet files at `urls`, one DataFrame at a time (in that order)."""
    for url in urls:
        loc = location(url, options)
        yield pq.read_table(io.BytesIO(loc.fs.cat_file(loc.root)), columns=columns).to_pandas()


def read_parquet_dir(fs: Any, path: str, columns: list[str] | None = None) -> pd.DataFrame:
    """All Parquet files directly under `path` (in name order) as one DataFrame."""
    fs.invalidate_cache(path)
    files = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".parquet"))
    # Whole-object reads: pyarrow over an fsspec handle makes many small Python-level reads.
    tables = [pq.read_table(io.BytesIO(fs.cat_file(p)), columns=columns) for p in files]
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()


def list_folder(fs: Any, path: str) -> list[str]:
    """What is directly under `path`, listed fresh from the store (no stale listing cache),
    sorted; empty if `path` does not exist."""
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return []
    return sorted(fs.ls(path, detail=False))


def remove_tree(fs: Any, path: str) -> None:
    if fs.exists(path):
        fs.rm(path, recursive=True)
